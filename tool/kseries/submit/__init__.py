"""The submit stage: the checked series as mails ready to send.

Takes a RenderedSeries and gives an outbox for git send-email or a b4 prep
branch; nothing is sent. recipients.py merges the manifest's To/Cc with
get_maintainer.pl's list and the trailers; outbox.py writes the mails;
b4.py makes the b4 prep branch; rangediff.py compares two renderings.
"""

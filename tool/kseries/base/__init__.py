"""The base stage: the kernel tree a series is rendered against.

Takes a ``--base`` value (``debian:6.X`` or ``PATH[@REF]``) and gives a
``Base``: a git repository and a commit. bases.py resolves and imports bases;
cache.py is where kseries keeps what it makes, and its lock; workspace.py the
scratch repository and worktrees kseries writes into instead of the user's;
objects.py reads and writes git objects in-process; maintainers.py runs the
base's own get_maintainer.pl (for the recipients check and for submit);
archive.py reaches Debian's archive through a private apt configuration in
the cache (source and binary packages, e.g. the bases' .debs, without
touching the machine's apt sources or installing anything).
"""

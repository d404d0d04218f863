"""The check stage: a series checked the way kernel CI bots and maintainers do.

Takes a series (this run's rendering, patch files or an mbox) and gives a
``Report``: a patch x check table, its JSON and the verdict submit reads.
mailbox.py parses mails; context.py is what every check reads; applies.py,
checkpatch.py, conventions.py, manifest.py and recipients.py are the fast
checks; build.py adapts the build checks (bisect.py, warnings.py, layout.py,
selftest.py), which build through the build stage; checklist.py chooses and
runs them; report.py and verdict.py hold the results.
"""

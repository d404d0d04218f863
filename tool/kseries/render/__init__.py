"""The render stage: the series, for one base, as commits and patch files.

Takes a Base and a series directory (templates/series/NAME, kselftest/) and
gives a ``RenderedSeries``. manifest.py reads its series.toml; probe.py reads
the facts of the base (rip.py those of the merged design's hooks, reading.py
what the probes share, csource.py C source reading); templating.py renders
the jinja2 templates into edits and messages; edits.py applies anchored
edits; series.py probes, edits, commits and runs git format-patch; cache.py
reuses the commits of unchanged inputs; apply.py puts the series on a branch.
"""

"""The run report: ``report.json``, ``report.md`` and the plots."""

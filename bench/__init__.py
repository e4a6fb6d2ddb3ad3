"""`make bench`: performance figures for design.md §6, written to bench-report.json."""

"""`make bench`: performance figures, each beside a baseline, written to bench-report.json."""

"""Studies over evaluated runs: paired comparison, reports, benchmark suites, representation analysis."""

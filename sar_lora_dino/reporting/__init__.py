"""Reports of runs: training curves, prediction pictures and the results table."""

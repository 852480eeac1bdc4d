"""Benchmarks of kdk-app (not part of the installed package); see bench/README.md."""

"""The benchmark suite (issue 9): `python -m bench.run` from the checkout; see bench/README.md."""

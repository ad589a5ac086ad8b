"""Benchmarks run by `python -m physlm bench NAME`: each module here has a `main(argv)`."""

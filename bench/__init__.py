"""The benchmark: fills a PostgreSQL database with a region's worth of data and measures the
screens, the API, the sweeps, the exports, the receipt PDF and concurrent applications.

Run by hand with `python -m bench` (see bench/README.md); never part of the timed test suite.
"""

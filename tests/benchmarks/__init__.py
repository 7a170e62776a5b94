"""Tests of the helpers of `benchmarks/`."""

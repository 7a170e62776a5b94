"""Tests of `treecot.pipeline`."""

"""Tests of `treecot.space`."""

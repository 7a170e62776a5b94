"""Tests of `treecot.evaluation`."""

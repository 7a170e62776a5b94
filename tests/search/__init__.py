"""Tests of `treecot.search`."""

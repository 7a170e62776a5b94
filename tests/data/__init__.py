"""Tests of `treecot.data`."""

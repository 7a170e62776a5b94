"""Tests of `treecot.hub`."""

"""Tests of `treecot.backends`."""

"""Tests of `treecot.scripts` (the training entry points)."""

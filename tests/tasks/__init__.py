"""Tests of `treecot.tasks`."""

"""Tests of `treecot.trainers`."""

"""treecot: tree-structured chain-of-thought data and CoT-aware post-training for small models."""

__version__ = "0.1.0.dev0"

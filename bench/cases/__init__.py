"""The rows of the bench, one module per family (and what they share, in common.py)."""

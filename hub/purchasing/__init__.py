"""Supplier linkage: replenishment policy and invoice matching (pure rules)."""

"""Supplier linkage as pure rules: replenishment policy, PO line receiving, 3-way match."""

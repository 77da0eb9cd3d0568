"""The one truth: SQL tables, the engine, row locks and migrations."""

"""Pure rules of the hub: no I/O, testable on their own."""

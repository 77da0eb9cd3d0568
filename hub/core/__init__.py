"""The core: consumes canonical messages, changes the store, writes the outbox."""

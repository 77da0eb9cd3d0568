"""Kafka plumbing: the embedded broker, topics, client settings, the publisher."""

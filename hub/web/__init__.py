"""The HTTP face of every role: webhooks, health, metrics, the operators' API, the dashboard."""

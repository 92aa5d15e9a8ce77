"""Email templates and sending: per-recipient messages as outbox rows."""

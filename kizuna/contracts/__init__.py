"""Webhook payload schemas and examples that both services test against."""

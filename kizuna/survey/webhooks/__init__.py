"""Webhook endpoints and signed, retried deliveries of Survey events."""

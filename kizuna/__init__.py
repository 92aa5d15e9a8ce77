"""Kizuna: a self-hosted CRM with its own Survey service."""

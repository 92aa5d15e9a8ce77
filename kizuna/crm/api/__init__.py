"""The CRM REST API v1 and personal API tokens."""

"""The Survey service: accounts, portals, surveys, public pages, responses, webhooks, API."""

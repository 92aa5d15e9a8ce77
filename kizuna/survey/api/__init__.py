"""The Survey REST API v1 (/survey/api/v1/): routes, SC key and trust-token auth, bodies."""

"""Users, sign-in and language: what both services share."""

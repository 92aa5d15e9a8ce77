"""Helpers with no models and no app imports."""

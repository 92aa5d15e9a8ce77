"""CSV import and export of leads and contacts."""

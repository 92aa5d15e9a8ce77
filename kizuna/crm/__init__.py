"""The CRM: organizations, members, leads, contacts, templates, mail, and the Survey integration."""

"""Postdesk: the self-service control panel for business email hosting."""

"""Loading history from a platform's own exports (CSV files) into the CRM."""

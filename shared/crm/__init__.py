"""The CRM library every function uses."""

"""The only code that talks to AWS: small adapters behind the ports the domain uses."""

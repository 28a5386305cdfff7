"""The embedded local stack: template.yaml built on moto, functions served and polled in-process."""

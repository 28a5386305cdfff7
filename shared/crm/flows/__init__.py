"""Revenue flows: definitions, the engine that decides each step, and the service that carries steps out."""

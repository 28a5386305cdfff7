"""Segments: definitions, built-ins and their evaluation."""

"""Segments, flows and templates as code: `crm apply DIR` and `crm export DIR` (docs/as-code.md).

layout reads a directory of YAML or JSON files through the API's own models (errors name file, line and field);
plan compares them with the workspace (create, change, delete, unchanged); workspace reads the workspace and
carries out a plan through the marketer HTTP API, and writes an export in the same layout.
"""

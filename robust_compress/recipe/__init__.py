"""Recipes: the YAML front end (schema, positions, errors, ``${var}``, ``--set``, checks)."""

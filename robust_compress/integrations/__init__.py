"""Integrations with other training stacks (the Lightning callback)."""

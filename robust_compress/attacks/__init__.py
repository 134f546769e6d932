"""Attacks: their configs, the plain-torch attacks, the builders and the adversary factory."""

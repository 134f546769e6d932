"""Compress to a robustness budget: robust sensitivity, the search stage, its plots."""

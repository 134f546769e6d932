"""Torch-Pruning adapter: structured pruning by dependency graph, importance, sparse training."""

"""torch_pruning."""

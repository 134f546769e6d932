"""The engine: ``Session`` runs a recipe's stages; checkpoints, resume, run folders, hooks."""

"""Pruning: the prune stage's methods and importance criteria (see :mod:`.registry`)."""

"""The epoch loop: adversarial training, the optimizer factory, TRADES, torchrun helpers."""

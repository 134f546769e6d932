"""TensorBoard adapter: the ``tensorboard`` tracker backend (an optional extra)."""

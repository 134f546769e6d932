"""ART adapter: the Adversarial Robustness Toolbox's attacks on live torch models."""

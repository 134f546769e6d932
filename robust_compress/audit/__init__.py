"""The adversarial audit: attack ensemble, worst case per example, sanity checks, eps sweep."""

"""Lightning adapter: the callback behind :mod:`robust_compress.integrations.lightning`."""

"""Models: model specs (``builtin:``, ``torchvision:``, ``py:``), layer names, state restoring."""

"""The ``robust-compress`` command: thin commands over the public API."""

"""Experiment tracking: the recipe's ``tracking:`` section, fed from the engine's hooks.

Each backend (``mlflow``, ``tensorboard``) is an entry of
:data:`robust_compress.registry.TRACKERS` whose item is an adapter class under
``robust_compress.adapters``; the backend's library is an optional extra, checked before a run
starts (:func:`robust_compress.tracking.configs.missing_extras`).
"""

"""``py:package.module:fn``: the user's own datasets.

``fn(**options)`` returns the train and test sets, as a pair ``(train, test)`` or a dict with
``train`` and ``test``. Each is a map-style ``torch.utils.data.Dataset`` of ``(image, label)``
(the image a (C, H, W) tensor of ``uint8`` or floats in [0, 1], a PIL image or an array) or a
:class:`~robust_compress.data.tensors.TensorData`. The number of classes is the dataset's
``classes`` (a list, as torchvision's datasets have) or ``num_classes``; without either, the
labels of the training set are read once to find it.
"""

from __future__ import annotations

import logging
from typing import Any

from robust_compress.data.datasets import Streamable
from robust_compress.data.tensors import TensorData
from robust_compress.errors import UserError
from robust_compress.registry import import_target

log = logging.getLogger(__name__)
_LAST: dict[str, Any] = {}  # the last call's result, by target and options


def read_python_source(target: str, split: str, options: dict) -> TensorData | Streamable:
    """Call the user's dataset function and return its ``split``.

    Raises:
        UserError: The target cannot be imported, fails, or returns something else than two
            datasets.
    """
    key = (target, repr(sorted(options.items())))
    if _LAST.get("key") != key:  # the train and test splits come from one call of the function
        _LAST.update(key=key, sets=_call(target, options))
    sets = _LAST["sets"]
    data = sets[split]
    if isinstance(data, TensorData):
        return data
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise UserError(
            f"py:{target} returned a {type(data).__name__} as {split} set, not a Dataset."
        )
    return Streamable(data, _num_classes(sets["train"], target), f"py:{target}")


def _call(target: str, options: dict) -> dict[str, Any]:
    if ":" not in target:
        raise UserError(f"dataset py:{target} must be py:package.module:fn.")
    try:
        fn = import_target(target)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot import dataset py:{target}: {exc}.") from None
    try:
        result = fn(**options)
    except TypeError as exc:
        raise UserError(f"py:{target} refused data.options {sorted(options)}: {exc}.") from None
    if isinstance(result, dict) and {"train", "test"} <= set(result):
        return {"train": result["train"], "test": result["test"]}
    if isinstance(result, tuple | list) and len(result) == 2:
        return {"train": result[0], "test": result[1]}
    raise UserError(
        f"py:{target} returned {type(result).__name__}; return (train, test) or "
        "{'train': ..., 'test': ...}."
    )


def _num_classes(train: Any, target: str) -> int:
    for attribute in ("num_classes", "classes"):
        value = getattr(train, attribute, None)
        if isinstance(value, int) and value > 1:
            return value
        if isinstance(value, list | tuple) and len(value) > 1:
            return len(value)
    targets = getattr(train, "targets", None)
    if targets is not None:
        labels = {int(t) for t in targets}
    else:
        log.info("py:%s: reading the training labels to count the classes", target)
        labels = {int(train[i][1]) for i in range(len(train))}
    if min(labels) < 0:
        raise UserError(f"py:{target}: labels must be 0..K-1, found {min(labels)}.")
    return max(labels) + 1

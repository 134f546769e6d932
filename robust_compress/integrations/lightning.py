"""The Lightning callback: a recipe's stages in a user's ``LightningModule`` and ``Trainer``.

::

    from robust_compress.integrations.lightning import RobustCompressCallback

    callback = RobustCompressCallback("recipe.yaml", attr="net", out="runs/lit")
    trainer = lightning.pytorch.Trainer(max_epochs=callback.epochs, callbacks=[callback])
    trainer.fit(module, train_loader)
    print(callback.report["metrics"]["final"])

Needs the ``lightning`` extra (``pip install 'robust-compress[lightning]'``). See
docs/lightning.md; the class lives in ``robust_compress.adapters.lightning.callback``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robust_compress.adapters.lightning.callback import RobustCompressCallback

__all__ = ["RobustCompressCallback"]


def __getattr__(name: str) -> Any:
    if name == "RobustCompressCallback":
        import importlib.util

        from robust_compress.errors import UserError

        if importlib.util.find_spec("lightning") is None:
            raise UserError(
                "the Lightning callback needs the lightning package: "
                "pip install 'robust-compress[lightning]'"
            )
        from robust_compress.adapters.lightning.callback import RobustCompressCallback

        return RobustCompressCallback
    raise AttributeError(name)

"""The Lightning callback: docs/lightning.md's example trains a tiny LightningModule on the CPU."""

import re
from pathlib import Path

import pytest

pytest.importorskip("lightning")

DOC = Path(__file__).resolve().parent.parent / "docs" / "lightning.md"


@pytest.mark.slow  # about 90 s on 2 shared cores (train, 2 prune steps, QAT, audit)
def test_the_doc_example_shrinks_quantizes_and_audits():
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    scope: dict = {"__name__": "lightning_example"}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - our own doc
    callback, module, report = scope["callback"], scope["module"], scope["report"]
    assert callback.epochs == 5  # train 1 + prune 2 steps + 1 fine-tune + QAT 1
    assert scope["after"] < 0.5 * scope["before"]  # half the channels of each conv went
    assert report["models"]["dense"]["params"] == scope["before"]
    assert type(module.model).__module__.startswith("brevitas")  # the fake-quant net trained
    assert {"final", "dense"} <= set(report["audit"])
    assert report["audit"]["final"]["samples"] == 32
    assert report["metrics"]["final"]["robust_source"] == "audit worst case"


def test_missing_lightning_is_a_clear_error(monkeypatch):
    import importlib.util

    import robust_compress.integrations.lightning as integration
    from robust_compress.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "lightning" else real(n, *a)
    )
    with pytest.raises(UserError, match=r"pip install 'robust-compress\[lightning\]'"):
        integration.RobustCompressCallback  # noqa: B018

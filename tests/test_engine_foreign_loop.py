import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "engine.md"


def doc_example() -> str:
    text = DOC.read_text().split("## Driving a session from your own training loop", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_foreign_loop_example_runs_as_documented():
    from robust_compress.models.specs import CNNSmall

    my_model = CNNSmall()
    before = sum(p.numel() for p in my_model.parameters())
    scope = {"my_model": my_model}
    exec(compile(doc_example(), str(DOC), "exec"), scope)
    session = scope["session"]
    assert session.model is scope["qmodel"]
    assert session.float_model is my_model  # the user's model, pruned in place
    assert sum(p.numel() for p in my_model.parameters()) < before / 2
    assert session.pruning_step() is False  # both steps taken
    assert session.quant_config["weight_bits"] == 8
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    scope["qmodel"](x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

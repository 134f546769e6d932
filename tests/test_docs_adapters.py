import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "adapters.md"


def test_adapters_doc_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert 25 <= len(code.strip().splitlines()) <= 45
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    macs_ratio, agreement = map(float, capsys.readouterr().out.split()[-2:])
    assert macs_ratio < 0.4  # half the channels of both convs: about a quarter of the MACs
    assert agreement >= 0.99
    assert (tmp_path / "model.int8.onnx").stat().st_size > 0
    assert scope["pruner"].done

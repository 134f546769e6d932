"""Third-party items registered through the entry-point group, used by a recipe.

The attack, prune method, dataset and quantizer backend come from docs/extending.md itself,
so the page's examples are known to work.
"""

import re
import sys
import textwrap
from pathlib import Path

import pytest

from robust_compress import registry
from robust_compress.errors import UserError

PLUGIN = textwrap.dedent(
    """
    from robust_compress.data.datasets import DATASETS, load_dataset
    from robust_compress.models.specs import BUILTINS, CNNSmall

    @DATASETS.register("plugin-tiny")
    def plugin_tiny(split, *, root=None, download=False):
        data = load_dataset("synthetic", split)
        return data.subset(128 if split == "train" else 64)

    @BUILTINS.register("plugin_cnn")
    def plugin_cnn(num_classes=10, in_channels=1):
        return CNNSmall(num_classes, in_channels, width=8, hidden=16)
    """
)

RECIPE = """\
name: plugin-recipe
model: {spec: builtin:plugin_cnn}
data: {name: plugin-tiny, batch_size: 32}
threat: {eps: 0.1}
stages:
  - train: {method: natural, epochs: 1}
"""


def _install(tmp_path, monkeypatch, module_text: str) -> None:
    """Put a module and a dist-info naming it in the plugin group on sys.path."""
    (tmp_path / "rc_test_plugin.py").write_text(module_text)
    info = tmp_path / "rc_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rc-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.PLUGIN_GROUP}]\ntiny = rc_test_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._plugins, "loaded", False)
    monkeypatch.delitem(sys.modules, "rc_test_plugin", raising=False)


def test_plugin_dataset_and_model_run_in_a_recipe(tmp_path, monkeypatch):
    from robust_compress.data.datasets import DATASETS
    from robust_compress.engine.session import Session
    from robust_compress.models.specs import BUILTINS
    from robust_compress.recipe.loader import parse_recipe

    _install(tmp_path, monkeypatch, PLUGIN)
    try:
        recipe = parse_recipe(RECIPE)  # validation finds the plugin's names
        report = Session(recipe).run()
    finally:
        DATASETS.remove("plugin-tiny")
        BUILTINS.remove("plugin_cnn")
    assert report["per_stage"][0]["params"] < 20_000  # the plugin's small CNN
    assert len(recipe.stages) == 1


def test_broken_plugin_is_a_user_error_naming_it(tmp_path, monkeypatch):
    from robust_compress.data.datasets import DATASETS

    _install(tmp_path, monkeypatch, "raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match="plugin 'tiny' .*boom"):
        DATASETS.names()


DOCS = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def _docs_blocks(language: str, first_line: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    return "\n".join(b for b in blocks if b.startswith(first_line))


def _line_col(text: str, needle: str) -> str:
    """The 1-based ``line:col`` where ``needle`` starts in ``text``."""
    before = text[: text.index(needle)]
    return f"{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def test_docs_plugins_register_an_attack_a_method_a_dataset_and_a_backend(tmp_path, monkeypatch):
    from robust_compress.data.datasets import DATASETS
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import parse_recipe
    from robust_compress.registry import ATTACKS, PRUNE_METHODS, QUANTIZERS

    _install(tmp_path, monkeypatch, _docs_blocks("python", "# my_plugin.py"))
    recipe_text = _docs_blocks("yaml", "# my-recipe.yaml")
    try:
        recipe = parse_recipe(recipe_text)  # validation finds the plugin's names
        train, prune, quantize, audit = recipe.stages
        assert type(train.adversary).__name__ == "MomentumPgdConfig"
        assert train.adversary.decay == 0.5 and train.adversary.eps == 0.1
        assert type(prune).__name__ == "GlobalMagnitude" and type(quantize).__name__ == "W4A8"
        report = Session(recipe).run()
        bad = recipe_text.replace("steps: 2}", "steps: 2, restarts: 2}")
        where = _line_col(bad, "restarts")
        with pytest.raises(UserError, match=rf":{where}: stages.0.train.adversary.restarts"):
            parse_recipe(bad)
        bad = recipe_text.replace("ratio: 0.5}", "ratio: 0.95, include_head: true}")
        line = _line_col(bad, "ratio: 0.95").split(":")[0]
        with pytest.raises(UserError, match=rf":{line}:\d+: stages.1.prune.ratio: with"):
            parse_recipe(bad)
    finally:
        DATASETS.remove("tiny-shapes")
        ATTACKS.remove("momentum_pgd")
        PRUNE_METHODS.remove("global_magnitude")
        QUANTIZERS.remove("w4a8")
    assert report["prune"]["method"] == "global_magnitude"
    assert 0.45 < report["prune"]["sparsity"] < 0.55
    final = report["audit"]["final"]
    assert final["attacks"] == ["fgsm", "momentum_pgd"] and final["samples"] == 32
    assert final["per_attack"]["momentum_pgd"]["attacked"] > 0  # the plugin attack really ran
    assert final["robust"] <= final["per_attack"]["fgsm"]["accuracy"]

"""Third-party datasets and models registered through the entry-point group, used by a recipe."""

import sys
import textwrap

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
        DATASETS._items.pop("plugin-tiny", None)
        BUILTINS._items.pop("plugin_cnn", None)
    assert report["per_stage"][0]["params"] < 20_000  # the plugin's small CNN
    assert len(recipe.stages) == 1


def test_broken_plugin_is_a_user_error_naming_it(tmp_path, monkeypatch):
    from robust_compress.data.datasets import DATASETS

    _install(tmp_path, monkeypatch, "raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match="plugin 'tiny' .*boom"):
        DATASETS.names()

"""`make zoo` (experiments/zoo.py): its architectures and recipes, without running them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))

import zoo  # noqa: E402

from robust_compress.recipe import parse_recipe  # noqa: E402


def test_the_zoo_carries_at_least_twelve_architectures_at_two_sizes():
    specs = {spec for _, spec, _ in zoo.ARCHS}
    assert len(specs) >= 12
    assert {32, 64} <= {size for *_, size in zoo.ARCHS}
    assert any(spec.startswith("timm:") for spec in specs)
    assert len({label for label, *_ in zoo.ARCHS}) == len(zoo.ARCHS)


@pytest.mark.parametrize("label", [label for label, *_ in zoo.ARCHS])
def test_every_zoo_recipe_validates(label):
    recipe = parse_recipe(zoo.recipe_text(label), f"zoo:{label}")
    assert [s.kind for s in recipe.stages] == list(zoo.STAGES)
    assert recipe.data.options["channels"] == 3

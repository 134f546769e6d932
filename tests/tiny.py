"""A tiny session from a few stage lines: cnn_tiny on 256 synthetic images (shared by tests)."""

from robust_compress.engine.session import Session
from robust_compress.recipe.loader import parse_recipe

TINY = (
    "model: {spec: builtin:cnn_tiny}\n"
    "data: {name: synthetic, batch_size: 64, train_subset: 256, test_subset: 64}\n"
    "threat: {eps: 0.1}\nstages:\n"
)


def tiny_session(name: str, stages: str, out=None) -> Session:
    """A set-up session of the tiny recipe with ``stages`` (YAML list items, indented)."""
    session = Session(parse_recipe(f"name: {name}\nseed: 0\n{TINY}{stages}"), out)
    session.setup()
    return session

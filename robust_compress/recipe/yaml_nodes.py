"""YAML loading with positions, for recipes.

The text is composed with PyYAML's ``SafeLoader`` into a node tree, and the plain values are
built from the nodes here, so that every value and every mapping key keeps its line and
column. Only data comes out: strings, numbers, booleans, null, lists and mappings (with
``yaml.safe_load``'s rules for anchors, aliases and ``<<`` merge keys; one addition: a plain
``1e-3`` is a number, as in YAML 1.2, where PyYAML would read text). Any other tag, a
duplicate key, a non-string key, a recursive alias or nesting deeper than :data:`MAX_DEPTH`
is reported as a :class:`Issue` with its position instead of raising.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

MAX_DEPTH = 50
MAX_VALUES = 100_000

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null")}
_AS_TEXT_TAGS = {_YAML + "timestamp", _YAML + "merge"}  # read these as plain strings
_SEQ, _MAP, _MERGE = _YAML + "seq", _YAML + "map", _YAML + "merge"


@dataclass
class Issue:
    """A problem found while reading the YAML, tied to a position.

    Attributes:
        line: 1-based line.
        col: 1-based column.
        path: Path of the value concerned (empty for the whole document).
        message: What is wrong, on one line.
        syntax: True for YAML syntax errors (reported under the field name ``yaml``).
    """

    line: int
    col: int
    path: Path
    message: str
    syntax: bool = False


@dataclass
class Document:
    """Plain data built from a YAML text, with the position of every value and key.

    Attributes:
        data: The values (None for an empty document).
        values: Path -> (line, col) where the value starts.
        keys: Path -> (line, col) of the mapping key that holds the value.
        issues: Problems found; the values concerned are replaced by None.
        bad: Paths whose values were rejected (errors below them are not worth reporting).
    """

    data: Any = None
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    bad: set[Path] = field(default_factory=set)


# YAML 1.1 (PyYAML) reads `1e-3` as text; recipes read it as a number, like YAML 1.2 does.
FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float."""


class RecipeDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes strings like ``1e-3`` so they read back as text."""


for _cls in (RecipeLoader, RecipeDumper):
    _cls.add_implicit_resolver(_YAML + "float", FLOAT_12, list("-+0123456789"))


class _TooLarge(Exception):
    """Raised when aliases expand the document beyond :data:`MAX_VALUES` values."""


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _line_col(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def syntax_issue(text: str, exc: BaseException) -> Issue:
    """Turn a PyYAML (or recursion) error into a one-line :class:`Issue`."""
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _line_col(text, exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return Issue(line, col, (), f"unacceptable character {char!r} ({exc.reason})", True)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem += f" ({exc.context})"
        if "'\\t'" in problem:
            problem += "; YAML does not allow tabs for indentation, use spaces"
        return Issue(line, col, (), " ".join(problem.split()), True)
    if isinstance(exc, RecursionError):
        return Issue(1, 1, (), "the document is nested too deeply to read", True)
    return Issue(1, 1, (), " ".join(str(exc).split()) or type(exc).__name__, True)


def read_yaml(text: str) -> Document:
    """Read one YAML document into plain data with positions.

    Args:
        text: The YAML text.

    Returns:
        A :class:`Document`; syntax errors come back as a single issue with ``syntax=True``.
    """
    try:
        root = yaml.compose(text, Loader=RecipeLoader)
    except (yaml.YAMLError, RecursionError) as exc:
        return Document(issues=[syntax_issue(text, exc)])
    doc = Document()
    if root is None:
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(root, (), ())
    except _TooLarge:
        line, col = _mark(root)
        msg = f"the document expands to more than {MAX_VALUES} values (too many aliases?)"
        doc.data, doc.issues = None, [Issue(line, col, (), msg)]
        doc.bad.add(())
    return doc


class _Builder:
    """Builds plain values from nodes, recording positions and issues in a Document."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.count = 0
        self.constructor = RecipeLoader("")

    def issue(self, node: Node, path: Path, message: str, bad: bool = True) -> None:
        line, col = _mark(node)
        self.doc.issues.append(Issue(line, col, path, message))
        if bad:
            self.doc.bad.add(path)

    def build(self, node: Node, path: Path, stack: tuple[int, ...]) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLarge
        self.doc.values[path] = _mark(node)
        if id(node) in stack:
            self.issue(node, path, "an alias refers to a value that contains it (recursion)")
            return None
        if len(stack) >= MAX_DEPTH:
            self.issue(node, path, f"nested more than {MAX_DEPTH} levels deep")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        stack = (*stack, id(node))
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, i), stack) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self.mapping(node, path, stack)
        return self.bad_tag(node, path)

    def bad_tag(self, node: Node, path: Path) -> None:
        self.issue(
            node,
            path,
            f"YAML tag {_short_tag(node.tag)!r} is not allowed: a recipe holds plain data "
            "(strings, numbers, booleans, null, lists and mappings)",
        )

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag in _AS_TEXT_TAGS:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            return self.bad_tag(node, path)
        try:
            return self.constructor.construct_object(node)
        except Exception:  # noqa: BLE001 - e.g. `!!int abc` or `!!bool maybe`
            kind = _short_tag(node.tag)
            self.issue(node, path, f"cannot read {node.value!r} as {kind}")
            return None

    def mapping(self, node: MappingNode, path: Path, stack: tuple[int, ...]) -> dict:
        result: dict[str, Any] = {}
        first: dict[str, int] = {}
        explicit, merged = self.pairs(node, path, set())
        for key_node, value_node in explicit:
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in first:
                msg = f"duplicate key {key!r} (first defined on line {first[key]})"
                self.issue(key_node, (*path, key), msg, bad=False)
            first[key] = _mark(key_node)[0]
            self.doc.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key), stack)
        for key_node, value_node in merged:
            key = self.key(key_node, path)
            if key is None or key in result:
                continue
            self.doc.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key), stack)
        return result

    def pairs(self, node: MappingNode, path: Path, seen: set[int]) -> tuple[list, list]:
        """Split a mapping's entries into explicit ones and ones merged in with ``<<``."""
        seen.add(id(node))
        explicit, merged = [], []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                explicit.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in seen:
                    self.issue(source, path, "'<<' merges only mappings (and not recursively)")
                    continue
                more_explicit, more_merged = self.pairs(source, path, seen)
                merged.extend(more_explicit + more_merged)
        return explicit, merged

    def key(self, node: Node, path: Path) -> str | None:
        if not isinstance(node, ScalarNode):
            self.issue(node, path, "a mapping key must be a plain string, not a list or mapping")
            return None
        value = self.scalar(node, path)
        if not isinstance(value, str):
            msg = f"key {node.value!r} is read as {type(value).__name__}; quote it to make it text"
            self.issue(node, path, msg, bad=False)
            return None
        return value

"""The shape of the package: small modules and functions, layers without import cycles.

These read the source (no imports), so they hold on any machine.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE, ADAPTERS = ROOT / "robust_compress", ROOT / "adapters"
FOREIGN = (
    "art",
    "torch_pruning",
    "brevitas",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnxoptimizer",
    "torchvision",
    "timm",
    "PIL",
    "scipy",
    "mlflow",
    "tensorboard",
    "lightning",
    "pytorch_lightning",
)
# torch's own wrappers of foreign libraries count as those libraries
FOREIGN_WITHIN_TORCH = ("torch.utils.tensorboard",)
MAX_LINES, MAX_PARAMS = 300, 8


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in (("robust_compress", CORE), ("robust_compress.adapters", ADAPTERS)):
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement names (function-level ones too), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, node.lineno)]
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return out


def _subpackages() -> set[str]:
    names = {"robust_compress.adapters"}
    for path in CORE.iterdir():
        if (path / "__init__.py").is_file():
            names.add(f"robust_compress.{path.name}")
    for path in ADAPTERS.iterdir():
        if (path / "__init__.py").is_file():
            names.add(f"robust_compress.adapters.{path.name}")
    return names


SUBPACKAGES = _subpackages()


def _package(module: str) -> str:
    """The room a module lives in: its subpackage (``robust_compress.audit``) or the root.

    ``python -m robust_compress`` (``__main__``) sits above every room.
    """
    if module == "robust_compress.__main__":
        return module
    parts = module.split(".")
    for n in (3, 2):
        if ".".join(parts[:n]) in SUBPACKAGES:
            return ".".join(parts[:n])
    return "robust_compress"


def _package_graph() -> dict[str, set[str]]:
    modules = _modules()
    packages = {_package(m) for m in modules}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        source = _package(module)
        for name, _ in _imports(path):
            target = _package(name) if name.startswith("robust_compress.") else None
            if target in packages and target != source and source != "robust_compress.__main__":
                graph[source].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_package_level_import_cycles():
    assert _cycles(_package_graph()) == []


def test_root_modules_import_no_subpackage():
    """The root modules (errors, registry, config, ...) are the bottom layer."""
    for module, path in _modules().items():
        if _package(module) == "robust_compress":
            for name, line in _imports(path):
                assert _package(name) == "robust_compress" or not name.startswith(
                    "robust_compress."
                ), f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_only_adapters_import_foreign_libraries():
    for module, path in _modules().items():
        if module.startswith("robust_compress.adapters"):
            continue
        for name, line in _imports(path):
            top = name.split(".")[0]
            assert top not in FOREIGN, f"{path.relative_to(ROOT)}:{line} imports {name}"
            assert not name.startswith(FOREIGN_WITHIN_TORCH), f"{path.relative_to(ROOT)}:{line}"


def test_each_foreign_library_has_its_own_adapter():
    """An adapter package imports its own library, not another adapter's."""
    own = {"mlflow": {"mlflow"}, "tensorboard": {"tensorboard", "torch.utils.tensorboard"}}
    own["lightning"] = {"lightning", "pytorch_lightning"}
    for module, path in _modules().items():
        parts = module.split(".")
        if len(parts) < 3 or parts[1] != "adapters" or parts[2] not in own:
            continue
        for name, line in _imports(path):
            for adapter, names in own.items():
                if adapter != parts[2] and any(
                    name.split(".")[0] == n or name.startswith(n) for n in names
                ):
                    raise AssertionError(f"{path.relative_to(ROOT)}:{line} imports {name}")


def test_modules_are_small():
    for path in _modules().values():
        lines = path.read_text().count("\n")
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
    return count - (1 if names and names[0].arg in ("self", "cls") else 0)


def test_functions_take_few_parameters():
    """At most 8 parameters; the CLI's commands (typer option lists) are the exception."""
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            command = module.startswith("robust_compress.cli") and any(
                "command" in ast.unparse(d) for d in node.decorator_list
            )
            if not command:
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                assert _params(node) <= MAX_PARAMS, f"{where} takes {_params(node)} parameters"

import subprocess
import sys
from pathlib import Path

import pytest


def test_import_is_light():
    code = (
        "import sys, robust_compress, robust_compress.adapters;"
        "heavy = [m for m in ('torch', 'torch_pruning', 'art', 'brevitas', 'onnxruntime', 'onnx')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_core_modules_do_not_import_adapter_libraries():
    code = (
        "import sys, importlib, pkgutil, robust_compress;"
        "[importlib.import_module('robust_compress.' + m.name)"
        " for m in pkgutil.iter_modules(robust_compress.__path__)"
        " if m.name not in ('adapters', '__main__')];"
        "print([m for m in ('torch_pruning', 'art', 'brevitas', 'onnxruntime', 'onnx')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_adapters_subpackage_installed():
    import robust_compress.adapters as adapters

    assert adapters.__name__ == "robust_compress.adapters"


@pytest.mark.slow
def test_wheel_installs_adapters_as_subpackage(tmp_path):
    """A normal (non-editable) wheel install imports robust_compress.adapters too."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(root),
            "-w",
            str(tmp_path / "wheel"),
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    py = tmp_path / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    code = "import robust_compress.adapters as a; print(a.__file__)"
    out = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert "site-packages/robust_compress/adapters/__init__.py" in out.stdout


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject.toml lists packages by hand: a new subpackage missing there is not installed."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for p in (root / "robust_compress").rglob("__init__.py")
        if "adapters" not in p.parts
    } | {
        ".".join(("robust_compress", *p.parent.relative_to(root).parts))
        for p in (root / "adapters").rglob("__init__.py")
    }
    assert found - listed == set()

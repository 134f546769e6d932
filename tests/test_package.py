import subprocess
import sys


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

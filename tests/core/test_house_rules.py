"""The architecture rules of DESIGN.md, checked by import-linter and by importing the core with Qt blocked."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, encoding="utf-8")
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_imports_with_qt_and_torch_blocked():
    code = """
import sys, importlib, pkgutil
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'pyqtgraph', 'vtk', 'vtkmodules', 'superqt', 'torch'}:
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import ctstudio.volume, ctstudio.errors
for pkg in ('ctstudio.io', 'ctstudio.imaging', 'ctstudio.studies'):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):
        importlib.import_module(info.name)
print('ok')
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_the_layers_contract_catches_an_upward_import(tmp_path):
    """A copy of the package where imaging (a low layer) imports pipelines (a high one) breaks the contract."""
    import shutil

    shutil.copytree(ROOT / "ctstudio", tmp_path / "ctstudio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).with_name("lint-imports")
    run = lambda: subprocess.run([str(lint), "--config", str(tmp_path / "pyproject.toml")],  # noqa: E731
                                 cwd=tmp_path, capture_output=True, text=True, encoding="utf-8")
    assert run().returncode == 0  # the copy itself is clean
    with open(tmp_path / "ctstudio" / "imaging" / "window.py", "a", encoding="utf-8") as fh:
        fh.write("\nfrom ctstudio.pipelines import devices  # noqa: E402,F401 (deliberately upward)\n")
    res = run()
    assert res.returncode != 0
    assert "Layers: a module imports only from its own layer or below BROKEN" in res.stdout
    assert "ctstudio.imaging.window -> ctstudio.pipelines.devices" in res.stdout

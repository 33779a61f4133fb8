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

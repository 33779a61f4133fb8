"""Training runs on disk, for a window that starts them as child processes and re-attaches to them.

A run folder (``ctstudio train ... --out RUN``) holds what :mod:`ctstudio.pipelines.train` writes
(``events.jsonl``, ``checkpoint/``, ``previews/``, the final model) plus what the window writes beside it:

- ``run.json``: how the run was started (kind, data, device, config file, created) -- enough to continue it;
- ``config.json``: the config (``{"base": preset, ...fields}``) passed as ``--config``;
- ``train.pid``: ``{"pid", "started", "argv"}`` of the process running it (kept after it ends);
- ``train.log``: the process's stderr (text), appended across sessions.

:func:`process_state` tells whether the recorded process still runs this run (the pid alone is not enough:
pids are reused), and whether it is paused (stopped by SIGSTOP). :func:`run_status` reads the event log to
say how a run ended. No Qt, no torch.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctstudio.pipelines.train import CHECKPOINT_DIR, EVENTS_FILE, PREVIEWS_DIR

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
PID_FILE = "train.pid"
LOG_FILE = "train.log"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a temporary file renamed over the target)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def train_argv(python: str, run: Path, spec: dict, resume: bool) -> list[str]:
    """The command line that runs (or continues) the run described by ``spec`` (run.json) in ``run``."""
    argv = [python, "-m", "ctstudio.cli", "train", spec["kind"], "--data", str(spec["data"]),
            "--config", str(Path(run) / CONFIG_FILE), "--out", str(run), "--events", "jsonl",
            "--device", str(spec.get("device") or "auto")]
    if spec.get("name"):
        argv += ["--name", str(spec["name"])]
    if spec.get("threads"):
        argv += ["--threads", str(int(spec["threads"]))]
    if int(spec.get("processes") or 1) > 1:
        argv += ["--processes", str(int(spec["processes"]))]
    if resume:
        argv.append("--resume")
    return argv


def _proc_stat(pid: int) -> str | None:
    """The state letter of ``pid`` from /proc (Linux), ``None`` where /proc does not say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0] if ")" in text else None


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` and by them, and so on (Linux /proc; empty elsewhere). torchrun starts
    its workers in sessions of their own, so a signal to the launcher's process group would not reach them."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            text = (d / "stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def process_state(run: Path) -> str:
    """``"running"``, ``"paused"`` (SIGSTOP) or ``"gone"`` for the process recorded in ``run``/train.pid.

    A pid counts only while its command line still names this run folder (Linux /proc; elsewhere the pid's
    existence is trusted) and it is not a zombie.
    """
    info = read_json(Path(run) / PID_FILE)
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "gone"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "gone"  # another user's process: not ours
    state = _proc_stat(pid)
    if state in ("Z", "X"):
        return "gone"
    argv = _cmdline(pid)
    if argv is not None and str(Path(run)) not in argv:
        return "gone"
    return "paused" if state in ("T", "t") else "running"


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def send(run: Path, what: str) -> bool:
    """Pause (SIGSTOP), resume (SIGCONT) or stop (SIGCONT then SIGTERM: checkpoint, exit 143) the run's process;
    ``kill`` is SIGKILL (no checkpoint). False when no process of this run is alive.

    A run of several processes (torchrun and its workers): pause, resume and kill reach the workers too; stop
    goes to torchrun alone, which passes SIGTERM on to every worker (they agree on the step to stop at)."""
    if process_state(run) == "gone":
        return False
    pid = int(read_json(Path(run) / PID_FILE)["pid"])
    if what not in ("pause", "resume", "stop", "kill"):
        raise ValueError(f"unknown signal request {what!r}")
    family = [pid, *descendants(pid)]
    if what == "pause":
        _signal_all(family, signal.SIGSTOP)
    elif what == "resume":
        _signal_all(family, signal.SIGCONT)
    elif what == "stop":
        _signal_all(family, signal.SIGCONT)  # a stopped process would not handle SIGTERM until continued
        os.kill(pid, signal.SIGTERM)
    else:
        _signal_all(family, signal.SIGKILL)
    return True


class EventTail:
    """Reads a run's ``events.jsonl`` incrementally: each :meth:`read` returns the events appended since the
    last one (a partly written last line waits for its end)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._rest = b""

    def read(self) -> list[dict]:
        from ctstudio.training.events import parse_line

        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()  # b"" after a complete line
        out = []
        for line in lines:
            ev = parse_line(line.decode("utf-8", errors="replace"))
            if ev is not None:
                out.append(ev)
        return out


@dataclass
class RunStatus:
    """A run folder at a glance (the Train tab's run list)."""

    path: Path
    kind: str
    state: str           # running | paused | finished | stopped | failed | killed | new
    step: int            # last step logged
    total: int | None
    checkpoint_step: int | None  # the step of the last checkpoint written (a resume continues from here)
    message: str = ""

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "killed", "failed") and self.checkpoint_step is not None

    def label(self) -> str:
        total = f"/{self.total}" if self.total else ""
        extra = f" (checkpoint at {self.checkpoint_step})" if self.resumable else ""
        return f"{self.path.name}  [{self.kind or '?'}]  {self.state}  step {self.step}{total}{extra}"


def run_status(run: Path, events: list[dict] | None = None) -> RunStatus:
    """How ``run`` stands: its process, then the last ``done`` / ``error`` event of its log."""
    run = Path(run)
    spec = read_json(run / RUN_FILE)
    if events is None:
        events = EventTail(run / EVENTS_FILE).read()
    step, total, ckpt, kind = 0, None, None, spec.get("kind", "")
    ending: dict | None = None
    for ev in events:
        step = ev.get("done", step)
        total = ev.get("total", total)
        kind = ev.get("kind", kind) or kind
        if ev["stage"] == "checkpoint":
            ckpt = ev["done"]
        if ev["stage"] == "start":
            ending = None
        elif ev["stage"] in ("done", "error"):
            ending = ev
    proc = process_state(run)
    if proc != "gone":
        state, message = proc, ""
    elif ending is None:
        state = "killed" if events else "new"
        message = "the process ended without a word (killed or out of memory)" if events else ""
    elif ending["stage"] == "error":
        state, message = "failed", str(ending.get("message", ""))
    elif ending.get("cancelled"):
        state, message = "stopped", str(ending.get("reason", ""))
    else:
        state, message = "finished", str(ending.get("path", ""))
    if ckpt is None and (run / CHECKPOINT_DIR / "state.json").exists():
        ckpt = int(read_json(run / CHECKPOINT_DIR / "state.json").get("step", 0))
    return RunStatus(path=run, kind=kind, state=state, step=int(step), total=total, checkpoint_step=ckpt,
                     message=message)


def list_runs(root: Path) -> list[RunStatus]:
    """The run folders directly under ``root`` (newest first): folders with run.json or events.jsonl."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and ((p / RUN_FILE).exists() or (p / EVENTS_FILE).exists())]
    runs.sort(key=lambda p: max((p / f).stat().st_mtime for f in (RUN_FILE, EVENTS_FILE) if (p / f).exists()),
              reverse=True)
    return [run_status(p) for p in runs]


def latest_preview(run: Path) -> Path | None:
    previews = sorted((Path(run) / PREVIEWS_DIR).glob("*.png"))
    return previews[-1] if previews else None


def new_run_name(root: Path, kind: str) -> str:
    """A fresh folder name under ``root``: ``KIND-YYYYmmdd-HHMMSS`` (with a suffix if taken)."""
    base = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (Path(root) / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name

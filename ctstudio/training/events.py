"""Progress events: JSON lines for a parent process (the training tab), or one readable line for a person."""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


class JsonlPrinter:
    """``callback`` that prints each event as one JSON object per line (flushed)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def __call__(self, ev: dict) -> None:
        self.stream.write(json.dumps(_clean(ev), default=str, sort_keys=True) + "\n")
        self.stream.flush()


class TextPrinter:
    """``callback`` that prints a short human-readable line per event."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr

    def __call__(self, ev: dict) -> None:
        e = ev.get("event")
        step = f"{ev.get('step', 0)}/{ev.get('max_steps', '?')}"
        if e == "step":
            eta = ev.get("eta_s")
            eta_s = f"{eta / 60:.1f} min" if eta is not None else "?"
            line = (f"step {step}  loss {ev['loss']:.4g}  lr {ev.get('lr', 0):.2g}  "
                    f"{ev.get('steps_per_s', 0):.2f} steps/s  ETA {eta_s}")
        elif e in ("checkpoint", "preview"):
            line = f"{e} at step {step}: {ev.get('path')}"
        elif e == "done":
            line = f"done at step {step}" + (" (cancelled)" if ev.get("cancelled") else f": {ev.get('path')}")
        elif e == "error":
            line = f"error at step {step}: {ev.get('message')}"
        else:
            line = f"{e} {json.dumps(_clean({k: v for k, v in ev.items() if k != 'event'}), default=str)}"
        self.stream.write(line + "\n")
        self.stream.flush()


def parse_line(line: str) -> dict | None:
    """The inverse of :class:`JsonlPrinter` for one line (``None`` for a line that is not an event)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        ev = json.loads(line)
    except json.JSONDecodeError:
        return None
    return ev if isinstance(ev, dict) and "event" in ev else None

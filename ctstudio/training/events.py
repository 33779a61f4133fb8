"""Training events (the one schema of :mod:`ctstudio.jobs`): JSON lines for a parent process (the training tab)
and ``OUT/events.jsonl``, or one readable line for a person."""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

from ctstudio.jobs import EVENT_KEYS, validate_event


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
    """``callback`` that prints a short human-readable line per training event (:mod:`ctstudio.jobs` schema)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr

    def __call__(self, ev: dict) -> None:
        stage = ev.get("stage")
        step = f"{ev.get('done', 0)}/{ev.get('total') if ev.get('total') is not None else '?'}"
        if stage == "step":
            eta = ev.get("eta")
            eta_s = f"{eta / 60:.1f} min" if eta is not None else "?"
            line = (f"step {step}  loss {ev['loss']:.4g}  lr {ev.get('lr', 0):.2g}  "
                    f"{ev.get('steps_per_s', 0):.2f} steps/s  ETA {eta_s}")
        elif stage in ("checkpoint", "preview"):
            line = f"{stage} at step {step}: {ev.get('path')}"
        elif stage == "done":
            line = f"done at step {step}" + (" (cancelled)" if ev.get("cancelled") else f": {ev.get('path')}")
        elif stage == "error":
            line = f"error at step {step}: {ev.get('message')}"
        else:
            payload = {k: v for k, v in ev.items() if k not in EVENT_KEYS}
            line = f"{stage} at step {step} {json.dumps(_clean(payload), default=str)}"
        self.stream.write(line + "\n")
        self.stream.flush()


def parse_line(line: str) -> dict | None:
    """The inverse of :class:`JsonlPrinter` for one line: the event, or ``None`` for a line that is not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        return validate_event(json.loads(line))
    except (json.JSONDecodeError, ValueError):
        return None

"""Drive a pipeline job from the command line: a tqdm bar fed by its events (the one schema), the result returned."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import Any


def drive(job: Generator[dict, None, Any], quiet: bool = False, desc: str = "",
          postfix: Callable[[dict], str | None] | None = None, notes: bool = True) -> Any:
    """Run ``job`` to its end. A bar on stderr follows the events' ``done`` / ``total`` / ``unit`` (counts of
    nested jobs re-start it); ``notes`` listed in an event are printed as ``note: ...`` lines."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                return stop.value
            if notes:
                for note in ev.get("notes") or ():
                    (bar.write if bar is not None else _print_err)(f"note: {note}")
            if quiet or not ev.get("total"):
                continue
            if bar is None or bar.unit != ev["unit"] or bar.total != ev["total"]:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=ev["total"], unit=ev["unit"], desc=desc, file=sys.stderr, dynamic_ncols=True,
                           leave=False)
            bar.n = ev["done"]
            text = postfix(ev) if postfix is not None else None
            if text:
                bar.set_postfix_str(text, refresh=False)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()


def _print_err(text: str) -> None:
    print(text, file=sys.stderr)

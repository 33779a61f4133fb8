"""The training job: one request in, the trainer's events out, a run summary back.

:func:`train` checks the output folder (an existing run is continued only with ``resume``, replaced only
with ``overwrite``), chooses the device, builds the recipe for the model kind and drives the one
:class:`~ctstudio.training.trainer.Trainer`. Every event it yields is also appended to
``OUT/events.jsonl`` (one JSON object per line, flushed, kept across resumes), so a window that
re-attaches to a run can read its history. A cancel (``cancel=`` a :class:`~ctstudio.jobs.CancelToken`)
stops the run within one step with a checkpoint written; the summary then says ``cancelled``.

Under torchrun (``RANK`` / ``WORLD_SIZE`` in the environment; ``ctstudio train --processes N`` starts it) every
process runs this job: it joins the process group (gloo on the CPU, nccl on CUDA), all check the output
folder before rank 0 prepares it, and only rank 0 writes the event log and yields events; the other ranks
train silently and return a summary with no model path.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctstudio.errors import Cancelled, InputError

#: what makes a folder a training run (the files ``train`` writes)
EVENTS_FILE = "events.jsonl"
CHECKPOINT_DIR = "checkpoint"
PREVIEWS_DIR = "previews"


@dataclass(frozen=True)
class TrainRequest:
    """Everything one training run needs; ``None`` fields take the config's (or torch's) default."""

    kind: str                      # a model kind of ctstudio.training.recipes.RECIPES
    data: Path                     # a CT volume or a folder of them
    out: Path                      # the run folder: checkpoint/, previews/, events.jsonl, the model files
    config: str = "tiny"           # tiny | demo | paper | a JSON file naming its "base" preset
    steps: int | None = None       # steps to train to (total, counting a resumed run's earlier steps)
    resume: bool = False           # continue the run in ``out`` from its checkpoint
    overwrite: bool = False        # start over in an ``out`` that holds a run
    device: str = "auto"           # auto (CUDA, MPS, CPU) or a device name
    seed: int = 0
    checkpoint_every: int | None = None
    name: str | None = None        # the model's name (default: the recipe's)
    threads: int | None = None     # CPU threads for torch
    autocast: str | None = None    # none | bf16 (default: the config's)
    log_every: int = 10            # a step event every this many steps (and the first and last)


@dataclass(frozen=True)
class TrainSummary:
    """What a training run left behind."""

    out: Path
    model_path: Path | None        # the final model (None when cancelled)
    checkpoint: Path | None        # the last checkpoint written
    steps_done: int                # the step reached (counting earlier sessions of a resumed run)
    max_steps: int
    cancelled: bool
    wall_s: float                  # this session's wall time
    train_wall_s: float            # training time of all sessions together
    device: str


def existing_run(out: Path) -> list[str]:
    """The files in ``out`` that show it holds a training run (empty: none)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    if (out / CHECKPOINT_DIR / "state.json").exists():
        found.append(f"{CHECKPOINT_DIR}/state.json")
    if (out / EVENTS_FILE).exists():
        found.append(EVENTS_FILE)
    found += sorted(p.name for p in out.glob("*.safetensors") if p.with_suffix(".json").exists())
    return found


def check_out(req: TrainRequest) -> None:
    """Refuse to train onto an existing run unless asked to continue it (resume) or replace it (overwrite)."""
    out = Path(req.out)
    if req.resume and req.overwrite:
        raise InputError("--resume and --overwrite contradict each other", path=out,
                         hint="--resume continues the run in this folder, --overwrite starts it over")
    if out.exists() and not out.is_dir():
        raise InputError("the output is a file, not a folder", path=out, hint="give --out a folder")
    found = existing_run(out)
    if req.resume:
        if not (out / CHECKPOINT_DIR / "state.json").exists():
            raise InputError("there is no run to resume here (no checkpoint/state.json)", path=out,
                             hint="run without --resume to start one")
        return
    if found and not req.overwrite:
        raise InputError(f"the output folder already holds a training run ({', '.join(found)})", path=out,
                         hint="use --resume to continue it, or --overwrite to start over (its checkpoint, "
                              "previews and event log are deleted; a model of the same name is replaced)")


def clear_run(out: Path) -> None:
    """Delete what a previous run left that a new one would mix with: checkpoint, previews, event log."""
    out = Path(out)
    for d in (CHECKPOINT_DIR, PREVIEWS_DIR):
        if (out / d).is_dir():
            shutil.rmtree(out / d)
    (out / EVENTS_FILE).unlink(missing_ok=True)


def train(req: TrainRequest, cancel: Any = None) -> Generator[dict, None, TrainSummary]:
    """Run one training job: yields the trainer's events, returns a :class:`TrainSummary`."""
    from ctstudio.pipelines.devices import resolve_device
    from ctstudio.training import distributed

    t0 = time.perf_counter()
    dist = distributed.from_env()
    if not dist.enabled:
        check_out(req)
    device = distributed.init(dist, resolve_device(req.device))
    try:
        summary = yield from _train(req, cancel, dist, device, t0)
    finally:
        distributed.shutdown()
    return summary


def _train(req: TrainRequest, cancel, dist, device, t0: float) -> Generator[dict, None, TrainSummary]:
    import torch

    from ctstudio.jobs import run_job
    from ctstudio.training import distributed
    from ctstudio.training.events import JsonlPrinter
    from ctstudio.training.recipes import build_recipe
    from ctstudio.training.trainer import Trainer

    if dist.enabled:  # every rank checks before rank 0 writes anything
        check_out(req)
        distributed.barrier(dist)
    if req.threads:
        torch.set_num_threads(int(req.threads))
    torch.manual_seed(req.seed)  # the initial weights; a resumed run then restores everything else
    recipe = build_recipe(req.kind, req.config, req.data)
    cfg = recipe.config
    steps = int(req.steps or getattr(cfg, "steps", 1000))
    every = req.checkpoint_every if req.checkpoint_every is not None else getattr(cfg, "checkpoint_every", 500)
    trainer = Trainer(recipe, out_dir=Path(req.out), max_steps=steps, checkpoint_every=int(every), device=device,
                      seed=req.seed, cancel=cancel, data_dir=Path(req.data), name=req.name,
                      log_every=max(1, int(req.log_every)), autocast=req.autocast, dist=dist)
    _ = trainer.autocast_mode  # an unknown mode is an error before anything is written
    out = Path(req.out)
    checkpoint: Path | None = None
    model: Path | None = None
    cancelled = False
    if not dist.is_main:
        try:
            run_job(trainer.job(resume=req.resume), None)  # rank 0 speaks for the run
        except Cancelled:
            cancelled = True
        return TrainSummary(out=out, model_path=None, checkpoint=None, steps_done=trainer.step, max_steps=steps,
                            cancelled=cancelled, wall_s=time.perf_counter() - t0, train_wall_s=trainer.elapsed(),
                            device=str(device))
    if req.overwrite:
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / EVENTS_FILE, "a", encoding="utf-8") as log:
        record = JsonlPrinter(log)
        job = trainer.job(resume=req.resume)
        try:
            while True:
                try:
                    ev = next(job)
                except StopIteration as stop:
                    model = stop.value
                    break
                record(ev)
                if ev["stage"] == "checkpoint":
                    checkpoint = Path(ev["path"])
                yield ev
        except Cancelled:
            cancelled = True
    return TrainSummary(out=out, model_path=model, checkpoint=checkpoint, steps_done=trainer.step, max_steps=steps,
                        cancelled=cancelled, wall_s=time.perf_counter() - t0,
                        train_wall_s=trainer.elapsed(), device=str(device))


"""One training loop for every model kind.

A :class:`Recipe` builds its networks and optimizers and says what one step does (a GAN may take several
optimizer steps inside one ``train_step``); the :class:`Trainer` owns everything around it: the networks
(``Trainer.modules``; the recipe is handed what to call for each one, ``nets``, so the trainer can wrap
them: bf16 autocast, DDP), device, seeding, EMA, checkpoints and exact resume, progress events, cancel,
and the final model file with a model card built from the run itself.

Distributed (``dist``, :mod:`ctstudio.training.distributed`): under torchrun each process draws the same
global batch and trains on its share, the networks are wrapped in DistributedDataParallel, the ranks agree
on stopping, the logged losses are averaged over the ranks, and rank 0 alone writes checkpoints (with every
rank's torch generator state), previews and the model; a resumed run must have as many processes.

:meth:`Trainer.job` is the loop as a job generator (:mod:`ctstudio.jobs`): it yields events of the one
schema, ``job="train"``, ``stage`` one of ``start | step | checkpoint | preview | eval | done | error``,
``done`` = the step reached, ``total`` = ``max_steps``, ``unit="step"``, with the payload ``loss``,
``losses``, ``lr``, ``steps_per_s`` (step), ``path`` (checkpoint, preview, done), ``metrics`` (eval),
``cancelled``, ``elapsed_s`` (done), ``message``, ``type`` (error); and it *returns* the final model's path.
:meth:`Trainer.run` drives it, handing each event to ``callback``.

``cancel`` (a :class:`~ctstudio.jobs.CancelToken` or a callable) is checked before every step; a
cancelled run writes a checkpoint, emits ``done`` with ``cancelled: true`` and raises
:class:`~ctstudio.errors.Cancelled`.

Resume state (``<out>/checkpoint/state.safetensors`` + ``state.json``) holds module weights, EMA weights,
optimizer states, the torch RNG state (and the CUDA one where CUDA is used), the step, and the data
order: the numpy generator's ``bit_generator.state`` and the recipe's epoch position
(:meth:`Recipe.data_state`) as JSON. A resumed run restores them and draws the next batch directly, so
the next loss is bit-identical to an uninterrupted run without replaying the batches before it.
Nothing is pickled.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ctstudio import checkpoints
from ctstudio.errors import Cancelled, ConfigError, ModelError
from ctstudio.jobs import Progress, is_cancelled, run_job
from ctstudio.training import distributed
from ctstudio.training.distributed import DistInfo

#: autocast modes of the trainer: name -> dtype (``""``/``"none"``: full precision)
AUTOCAST = {"": None, "none": None, "bf16": torch.bfloat16}


class Recipe:
    """Base class (and protocol) of a training recipe. Subclasses set the attributes in ``__init__``."""

    kind: str = ""
    name: str = ""
    config: Any = None  # a frozen dataclass with to_dict()
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema_modules: tuple[str, ...] = ()
    ema_decay: float = 0.999
    #: the trainer asks for a preview every this many steps (0: never)
    preview_every: int = 0
    #: modules written to the final model file (default: all); e.g. a GAN drops its critic
    export_modules: tuple[str, ...] | None = None
    #: the config's autocast mode (a key of :data:`AUTOCAST`); the trainer's own option overrides it
    autocast: str = ""
    #: the shuffled-epoch index batches of recipes that have them (their position is saved in checkpoints)
    sampler: Any = None
    #: what the model card records of each training file (:func:`ctstudio.training.datasets.describe_volume`)
    data_files: list[dict] = []
    device: torch.device = torch.device("cpu")
    #: processes sharing the batch stream (the trainer sets it, :meth:`set_world_size`): each batch drawn
    #: holds ``world_size`` x the config's ``batch_size`` items, and each process trains on its share
    world_size: int = 1
    #: DDP must look for parameters a step leaves without a gradient (a GAN whose losses use only some outputs)
    ddp_find_unused: bool = False

    def global_batch_size(self) -> int:
        """Items per batch drawn by :meth:`make_batches`: the config's ``batch_size`` per process x processes."""
        return int(getattr(self.config, "batch_size", 1)) * int(self.world_size)

    def set_world_size(self, n: int) -> None:
        """Draw batches for ``n`` processes (the shuffled epochs are then cut into global batches)."""
        from ctstudio.training.datasets import ShuffledBatches

        self.world_size = int(n)
        if self.sampler is not None and self.sampler.batch_size != self.global_batch_size():
            self.sampler = ShuffledBatches(self.sampler.n, self.global_batch_size())

    def make_batches(self, data_dir: Path, rng: np.random.Generator) -> Iterator[Any]:  # pragma: no cover
        """An endless stream of batches drawn with ``rng`` (and :attr:`sampler`), nothing else random."""
        raise NotImplementedError

    def train_step(self, batch, step: int, nets: dict | None = None) -> dict[str, float]:  # pragma: no cover
        """One step; forward passes go through ``nets[name]`` (the trainer's; default :attr:`modules`)."""
        raise NotImplementedError

    def data_state(self) -> dict:
        """JSON: where the data order stands beyond the numpy generator's state (the epoch position)."""
        return self.sampler.state() if self.sampler is not None else {}

    def restore_data_state(self, state: dict | None) -> None:
        if self.sampler is not None:
            self.sampler.restore(state)

    def lr(self) -> float:
        for opt in self.optimizers.values():
            return float(opt.param_groups[0]["lr"])
        return 0.0

    def preview(self, step: int) -> np.ndarray | None:
        return None

    def evaluate(self) -> dict:
        return {}

    def export_card(self) -> dict:
        return {}

    def export_config(self) -> dict:
        return self.config.to_dict() if hasattr(self.config, "to_dict") else dict(self.config or {})


class EMA:
    """Exponential moving average of a module's parameters (buffers copied)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        # warm-up as in common practice: the average starts short and lengthens
        d = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p.detach(), 1.0 - d)
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)


class AutocastNet:
    """What a recipe calls instead of a module: its forward pass under ``torch.autocast``, outputs in float32.

    Other attributes are the module's own (a method called through them runs without autocast).
    """

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype):
        self.module = module
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.module(*args, **kwargs)
        return _to_float32(out)

    def __getattr__(self, name: str):
        return getattr(self.module, name)


def _to_float32(out):
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() and out.dtype != torch.float32 else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Flatten an optimizer state dict into tensors + JSON (no pickle)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            key = f"{prefix}.{pid}.{k}"
            if isinstance(v, torch.Tensor):
                tensors[key] = v.detach().cpu().contiguous().clone()
            else:
                scalars[key] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_restore(opt: torch.optim.Optimizer, prefix: str, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    pre = prefix + "."
    for key, v in tensors.items():
        if key.startswith(pre):
            pid, k = key[len(pre):].split(".", 1)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key[len(pre):].split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def machine_summary(device: torch.device) -> dict:
    """Where a model was trained, for its card: device (and GPU name), CPU, threads, OS, library versions."""
    from ctstudio import __version__

    out = {"device": str(device), "processor": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "ctstudio": __version__}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


@dataclass
class Trainer:
    recipe: Recipe
    out_dir: Path
    max_steps: int
    checkpoint_every: int = 500
    device: str | torch.device = "cpu"
    seed: int = 0
    callback: Callable[[dict], None] | None = None
    cancel: Any = None
    data_dir: Path | None = None
    name: str | None = None
    log_every: int = 10
    #: a key of :data:`AUTOCAST`; ``None``: the recipe's config decides
    autocast: str | None = None
    #: this process's place in a torchrun run (:mod:`ctstudio.training.distributed`; the process group is
    #: already joined); only rank 0 writes checkpoints, previews and the model
    dist: DistInfo = field(default_factory=DistInfo)
    #: the networks, by name (the recipe's modules, owned by the trainer from the start of a run)
    modules: dict[str, nn.Module] = field(default_factory=dict, init=False)
    #: what the recipe calls for each network in ``train_step`` (the module, or its autocast wrapper)
    nets: dict[str, Any] = field(default_factory=dict, init=False)
    ema: dict[str, EMA] = field(default_factory=dict, init=False)
    step: int = field(default=0, init=False)

    # -- events --------------------------------------------------------------------------
    def _event(self, stage: str, **payload) -> dict:
        return self._progress.event(stage, self.step, **payload)

    # -- state ---------------------------------------------------------------------------
    @property
    def ckpt_base(self) -> Path:
        return Path(self.out_dir) / "checkpoint" / "state"

    @property
    def autocast_mode(self) -> str:
        mode = self.recipe.autocast if self.autocast is None else self.autocast
        mode = (mode or "").lower()
        if mode not in AUTOCAST:
            raise ConfigError(f"unknown autocast mode {mode!r}", hint="choose one of: none, bf16")
        return "" if AUTOCAST[mode] is None else mode

    def save_checkpoint(self) -> Path | None:
        """Write the resume state (rank 0; in a distributed run every rank must call it: the torch generator
        states of all ranks are gathered into it). Returns the path written (``None`` on other ranks)."""
        r = self.recipe
        dev = torch.device(self.device)
        rng_states = distributed.gather_rng_states(torch.get_rng_state(), self.dist, dev)
        cuda_states = (distributed.gather_rng_states(torch.cuda.get_rng_state(dev), self.dist, dev)
                       if dev.type == "cuda" else [])
        if not self.dist.is_main:
            return None
        tensors = checkpoints.state_dicts_to_tensors({f"m_{k}": m for k, m in self.modules.items()})
        tensors.update(checkpoints.state_dicts_to_tensors({f"ema_{k}": e.shadow for k, e in self.ema.items()}))
        opt_meta = {}
        for name, opt in r.optimizers.items():
            t, m = _optimizer_tensors(opt, f"opt_{name}")
            tensors.update(t)
            opt_meta[name] = m
        tensors["rng.torch"] = rng_states[0]
        for rank, st in enumerate(rng_states[1:], start=1):
            tensors[f"rng.torch.rank{rank}"] = st
        if cuda_states:
            tensors["rng.cuda"] = cuda_states[0]
            for rank, st in enumerate(cuda_states[1:], start=1):
                tensors[f"rng.cuda.rank{rank}"] = st
        meta = {
            "kind": r.kind,
            "step": self.step,
            "seed": self.seed,
            "config": r.export_config(),
            "optimizers": opt_meta,
            "elapsed_s": self.elapsed(),
            "world_size": self.dist.world_size,
            "data": {"rng": self._rng.bit_generator.state, "order": r.data_state()},
            "extra": getattr(r, "resume_extra", lambda: {})(),
        }
        return checkpoints.save_tensors_json(self.ckpt_base, tensors, meta)

    def load_checkpoint(self) -> dict | None:
        """Restore the run; returns the saved data order (``None`` for a checkpoint from before it was saved)."""
        js = self.ckpt_base.with_name("state.json")
        if not js.exists():
            raise ModelError("no checkpoint to resume from", path=js, hint="run without --resume first")
        try:
            meta = json.loads(js.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"the checkpoint cannot be read ({exc})", path=js,
                             hint="start over with --overwrite") from None
        r = self.recipe
        if meta.get("kind") != r.kind:
            raise ModelError(f"the checkpoint is a {meta.get('kind')!r} run, not {r.kind!r}", path=js)
        if meta.get("config") != json.loads(json.dumps(r.export_config())):
            raise ConfigError("the checkpoint was trained with another config", path=js,
                              hint="resume with the same --config, or use a new --out folder")
        saved_world = int(meta.get("world_size", 1))
        if saved_world != self.dist.world_size:
            raise ConfigError(f"the checkpoint was written by a run of {saved_world} process(es), this one has "
                              f"{self.dist.world_size}", path=js,
                              hint=f"resume with --processes {saved_world} (the global batch, and so the data "
                                   "order, depends on the number of processes)")
        tensors = checkpoints.load_tensors(self.ckpt_base)
        for k, m in self.modules.items():
            checkpoints.load_into(m, tensors, f"m_{k}", path=js)
        for k, e in self.ema.items():
            checkpoints.load_into(e.shadow, tensors, f"ema_{k}", path=js)
        for name, opt in r.optimizers.items():
            _optimizer_restore(opt, f"opt_{name}", tensors, meta["optimizers"][name])
        rank = self.dist.rank
        torch.set_rng_state(tensors[f"rng.torch.rank{rank}" if rank else "rng.torch"])
        dev = torch.device(self.device)
        cuda_key = f"rng.cuda.rank{rank}" if rank else "rng.cuda"
        if dev.type == "cuda" and cuda_key in tensors:
            torch.cuda.set_rng_state(tensors[cuda_key], dev)
        self.step = int(meta["step"])
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        if hasattr(r, "resume_restore"):
            r.resume_restore(meta.get("extra", {}))
        return meta.get("data")

    def elapsed(self) -> float:
        """Seconds of training so far, counting the earlier sessions of a resumed run."""
        return getattr(self, "_elapsed_before", 0.0) + (time.perf_counter() - self._t0)

    # -- the loop ------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Path:
        """Train to ``max_steps``, handing every event to ``callback``; returns the final model's path."""
        return run_job(self.job(resume), self.callback)

    def job(self, resume: bool = False) -> Generator[dict, None, Path | None]:
        """The training loop as a job: yields its events, returns the final model's path (``None`` on ranks > 0)."""
        r = self.recipe
        self._t0 = time.perf_counter()
        self._elapsed_before = 0.0
        self._progress = Progress("train", total=int(self.max_steps), unit="step")
        try:
            device = torch.device(self.device)
            mode = self.autocast_mode
            dist = self.dist
            torch.manual_seed(self.seed + dist.rank)  # each rank's noise its own; rank 0's as a single process
            self.modules = dict(r.modules)
            for m in self.modules.values():
                m.to(device)
            r.device = device
            r.set_world_size(dist.world_size)
            calls = {k: (distributed.DistributedNet(distributed.wrap(m, device, r.ddp_find_unused), m) if dist.enabled else m)
                     for k, m in self.modules.items()}
            self.nets = {k: (AutocastNet(c, device.type, AUTOCAST[mode]) if mode else c) for k, c in calls.items()}
            self.ema = {k: EMA(self.modules[k], r.ema_decay) for k in r.ema_modules}
            self._rng = np.random.default_rng(self.seed)
            r.restore_data_state({})
            replay = 0
            if resume:
                data = self.load_checkpoint()
                if data is None:  # a checkpoint that predates the saved data order: replay the stream
                    replay = self.step
                else:
                    from ctstudio.training.datasets import bit_generator_from_state

                    self._rng = np.random.Generator(bit_generator_from_state(data["rng"]))
                    r.restore_data_state(data.get("order") or {})
            batches = iter(r.make_batches(Path(self.data_dir) if self.data_dir else None, self._rng))
            for _ in range(replay):
                next(batches)
            self._progress.restart_clock(self.step)
            first = self.step + 1
            yield self._event("start", resumed=bool(resume), device=str(device), kind=r.kind,
                              autocast=mode or "none", processes=dist.world_size,
                              global_batch=r.global_batch_size() if hasattr(r.config, "batch_size") else None)
            t_win, s_win = time.perf_counter(), self.step
            rate = 0.0
            while self.step < self.max_steps:
                if distributed.any_rank(is_cancelled(self.cancel), dist, device):  # all ranks stop at one step
                    path = self.save_checkpoint()
                    if dist.is_main:
                        yield self._event("checkpoint", path=str(path))
                    reason = str(getattr(self.cancel, "reason", "") or "") or (
                        "cancelled" if is_cancelled(self.cancel) else "another process of the run was stopped")
                    yield self._event("done", cancelled=True, elapsed_s=self.elapsed(), path=str(path),
                                      reason=reason)
                    raise Cancelled(f"training stopped at step {self.step} of {self.max_steps}; "
                                    f"checkpoint written to {path}")
                batch = distributed.shard_batch(next(batches), dist)
                for m in self.modules.values():
                    m.train()
                losses = r.train_step(batch, self.step, self.nets)
                losses = distributed.mean_over_ranks(losses, dist, device)  # the global batch's loss
                for k, e in self.ema.items():
                    e.update(self.modules[k], self.step)
                self.step += 1
                loss = float(losses.get("loss", next(iter(losses.values())))) if losses else float("nan")
                if not math.isfinite(loss):
                    raise ModelError(f"the loss became {loss} at step {self.step}",
                                     hint="lower the learning rate or check the data")
                now = time.perf_counter()
                if now - t_win > 0:
                    rate = (self.step - s_win) / (now - t_win)
                if self.step % self.log_every == 0 or self.step == self.max_steps or self.step == first:
                    yield self._event("step", loss=loss, losses={k: float(v) for k, v in losses.items()},
                                      lr=r.lr(), steps_per_s=rate)
                    if now - t_win > 30:  # a moving window for the rate
                        t_win, s_win = now, self.step
                if r.preview_every and self.step % r.preview_every == 0 and dist.is_main:
                    out = self._preview()
                    if out is not None:
                        yield self._event("preview", path=str(out))
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    path = self.save_checkpoint()
                    if dist.is_main:
                        yield self._event("checkpoint", path=str(path))
            if not self.checkpoint_every or self.step % self.checkpoint_every:
                path = self.save_checkpoint()
                if dist.is_main:
                    yield self._event("checkpoint", path=str(path))
            if not dist.is_main:  # rank 0 alone evaluates and writes the model
                yield self._event("done", path=None, elapsed_s=self.elapsed(), cancelled=False)
                return None
            metrics = self._with_ema(r.evaluate) or {}
            if metrics:
                yield self._event("eval", metrics=metrics)
            path = self.export(metrics)
            yield self._event("done", path=str(path), elapsed_s=self.elapsed(), cancelled=False)
            return path
        except Cancelled:
            raise
        except Exception as exc:
            message = str(exc)
            if self.dist.enabled:
                message = (f"process {self.dist.rank} of {self.dist.world_size}: {exc} (when another process of the "
                           "run ended first, its log says why; continue from the last checkpoint with --resume)")
            yield self._event("error", message=message, type=type(exc).__name__)
            raise

    def _preview(self) -> Path | None:
        r = self.recipe
        img = self._with_ema(lambda: r.preview(self.step))
        if img is None:
            return None
        out = Path(self.out_dir) / "previews" / f"step{self.step:07d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        from ctstudio.imaging.window import apply_window, preset

        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib import pyplot as plt

        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = np.concatenate(list(arr), axis=1)
        win = preset(getattr(r, "preview_window", "soft-tissue"))
        plt.imsave(out, apply_window(arr, win, np.uint8), cmap="gray", vmin=0, vmax=255)
        return out

    def _with_ema(self, fn):
        """Run ``fn`` with the EMA weights swapped into the trainer's modules."""
        saved = {}
        for k, e in self.ema.items():
            saved[k] = {n: t.detach().clone() for n, t in self.modules[k].state_dict().items()}
            self.modules[k].load_state_dict(e.shadow.state_dict())
            self.modules[k].eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            for k, sd in saved.items():
                self.modules[k].load_state_dict(sd)

    def card(self, metrics: dict | None = None) -> dict:
        """The model card, from this run: the recipe's facts, the evaluation, the data, steps, time, machine."""
        r = self.recipe
        files = list(r.data_files or [])
        spacings = sorted({tuple(f["spacing_xyz_mm"]) for f in files if f.get("spacing_xyz_mm")})
        card = dict(r.export_card() or {})
        card.update(metrics or {})
        card.update({
            "steps": self.step,
            "steps_planned": int(self.max_steps),
            "train_wall_s": round(self.elapsed(), 1),
            "seed": self.seed,
            "autocast": self.autocast_mode or "none",
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": {"source": str(self.data_dir) if self.data_dir is not None else "", "files": files},
            "pixel_spacing_xyz_mm": [list(s) for s in spacings],
            "machine": machine_summary(torch.device(self.device)),
        })
        return card

    def export(self, metrics: dict | None = None) -> Path:
        r = self.recipe
        keep = getattr(r, "export_modules", None) or tuple(self.modules)
        mods = {k: (self.ema[k].shadow if k in self.ema else self.modules[k]) for k in keep}
        name = self.name or r.name or f"{r.kind}-model"
        return checkpoints.save_model(self.out_dir, name, r.kind, mods, r.export_config(), self.card(metrics))

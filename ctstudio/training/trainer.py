"""One training loop for every model kind.

A :class:`Recipe` owns its networks, optimizers and the per-step logic (a GAN may take several
optimizer steps inside one ``train_step``); the :class:`Trainer` owns everything around it: device,
seeding, EMA, checkpoints and exact resume, progress events, cancel, and the final model file.

Events go to ``callback(dict)``: ``{"event": "start"|"step"|"checkpoint"|"preview"|"eval"|"done"|"error",
"step", "max_steps", "loss", "losses", "lr", "steps_per_s", "eta_s", "path", ...}``.
``cancel`` is a callable (or an object with ``is_set()``) checked before every step; a cancelled run
writes a checkpoint, emits ``done`` with ``cancelled: true`` and raises :class:`~ctstudio.errors.Cancelled`.

Resume state (``<out>/checkpoint/state.safetensors`` + ``state.json``) holds module weights, EMA
weights, optimizer states, the torch RNG state and the step. The batch iterator is re-created from the
same seed and fast-forwarded, so the next loss after a resume is bit-identical to an uninterrupted run.
Nothing is pickled.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ctstudio import checkpoints
from ctstudio.errors import Cancelled, ConfigError, ModelError


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

    def make_batches(self, data_dir: Path, rng: np.random.Generator) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError

    def train_step(self, batch, step: int) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    def to_device(self, device: torch.device) -> None:
        """Move modules to the device; called by the trainer before optimizers' states exist."""
        for m in self.modules.values():
            m.to(device)
        self.device = device

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


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


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
    ema: dict[str, EMA] = field(default_factory=dict, init=False)
    step: int = field(default=0, init=False)

    # -- events --------------------------------------------------------------------------
    def _emit(self, event: str, **kw) -> None:
        if self.callback is not None:
            self.callback({"event": event, "step": self.step, "max_steps": self.max_steps, **kw})

    # -- state ---------------------------------------------------------------------------
    @property
    def ckpt_base(self) -> Path:
        return Path(self.out_dir) / "checkpoint" / "state"

    def save_checkpoint(self) -> Path:
        r = self.recipe
        tensors = checkpoints.state_dicts_to_tensors({f"m_{k}": m for k, m in r.modules.items()})
        tensors.update(checkpoints.state_dicts_to_tensors({f"ema_{k}": e.shadow for k, e in self.ema.items()}))
        opt_meta = {}
        for name, opt in r.optimizers.items():
            t, m = _optimizer_tensors(opt, f"opt_{name}")
            tensors.update(t)
            opt_meta[name] = m
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "kind": r.kind,
            "step": self.step,
            "seed": self.seed,
            "config": r.export_config(),
            "optimizers": opt_meta,
            "elapsed_s": self._elapsed(),
            "extra": getattr(r, "resume_extra", lambda: {})(),
        }
        path = checkpoints.save_tensors_json(self.ckpt_base, tensors, meta)
        self._emit("checkpoint", path=str(path))
        return path

    def load_checkpoint(self) -> None:
        js = self.ckpt_base.with_name("state.json")
        if not js.exists():
            raise ModelError("no checkpoint to resume from", path=js, hint="run without --resume first")
        meta = json.loads(js.read_text())
        r = self.recipe
        if meta["kind"] != r.kind:
            raise ModelError(f"the checkpoint is a {meta['kind']!r} run, not {r.kind!r}", path=js)
        if meta["config"] != json.loads(json.dumps(r.export_config())):
            raise ConfigError("the checkpoint was trained with another config", path=js,
                              hint="resume with the same --config, or use a new --out folder")
        tensors = checkpoints.load_tensors(self.ckpt_base)
        for k, m in r.modules.items():
            checkpoints.load_into(m, tensors, f"m_{k}", path=js)
        for k, e in self.ema.items():
            checkpoints.load_into(e.shadow, tensors, f"ema_{k}", path=js)
        for name, opt in r.optimizers.items():
            _optimizer_restore(opt, f"opt_{name}", tensors, meta["optimizers"][name])
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(meta["step"])
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        if hasattr(r, "resume_restore"):
            r.resume_restore(meta.get("extra", {}))

    def _elapsed(self) -> float:
        return getattr(self, "_elapsed_before", 0.0) + (time.perf_counter() - self._t0)

    # -- the loop ------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Path | None:
        """Train to ``max_steps``; returns the final model's path (``None`` if cancelled)."""
        r = self.recipe
        self._t0 = time.perf_counter()
        self._elapsed_before = 0.0
        try:
            device = torch.device(self.device)
            torch.manual_seed(self.seed)
            r.to_device(device)
            self.ema = {k: EMA(r.modules[k], r.ema_decay) for k in r.ema_modules}
            if resume:
                self.load_checkpoint()
            rng = np.random.default_rng(self.seed)
            batches = iter(r.make_batches(Path(self.data_dir) if self.data_dir else None, rng))
            for _ in range(self.step):  # fast-forward the data stream to where the run stopped
                next(batches)
            self._emit("start", resumed=bool(resume), device=str(device), kind=r.kind)
            t_win, s_win = time.perf_counter(), self.step
            rate = 0.0
            while self.step < self.max_steps:
                if _is_cancelled(self.cancel):
                    self.save_checkpoint()
                    self._emit("done", cancelled=True, elapsed_s=self._elapsed())
                    raise Cancelled(f"training stopped at step {self.step} (checkpoint written)")
                batch = next(batches)
                for m in r.modules.values():
                    m.train()
                losses = r.train_step(batch, self.step)
                for k, e in self.ema.items():
                    e.update(r.modules[k], self.step)
                self.step += 1
                loss = float(losses.get("loss", next(iter(losses.values())))) if losses else float("nan")
                if not math.isfinite(loss):
                    raise ModelError(f"the loss became {loss} at step {self.step}",
                                     hint="lower the learning rate or check the data")
                now = time.perf_counter()
                if now - t_win > 0:
                    rate = (self.step - s_win) / (now - t_win)
                if self.step % self.log_every == 0 or self.step == self.max_steps or self.step == 1:
                    self._emit("step", loss=loss, losses={k: float(v) for k, v in losses.items()},
                               lr=r.lr(), steps_per_s=rate,
                               eta_s=(self.max_steps - self.step) / rate if rate > 0 else None)
                    if now - t_win > 30:  # a moving window for the rate
                        t_win, s_win = now, self.step
                if r.preview_every and self.step % r.preview_every == 0:
                    self._preview()
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save_checkpoint()
            if not self.checkpoint_every or self.step % self.checkpoint_every:
                self.save_checkpoint()
            path = self.export()
            self._emit("done", path=str(path), elapsed_s=self._elapsed(), cancelled=False)
            return path
        except Cancelled:
            raise
        except Exception as exc:
            self._emit("error", message=str(exc), type=type(exc).__name__)
            raise

    def _preview(self) -> None:
        r = self.recipe
        img = self._with_ema(lambda: r.preview(self.step))
        if img is None:
            return
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
        self._emit("preview", path=str(out))

    def _with_ema(self, fn):
        """Run ``fn`` with the EMA weights swapped into the recipe's modules."""
        r = self.recipe
        saved = {}
        for k, e in self.ema.items():
            saved[k] = {n: t.detach().clone() for n, t in r.modules[k].state_dict().items()}
            r.modules[k].load_state_dict(e.shadow.state_dict())
            r.modules[k].eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            for k, sd in saved.items():
                r.modules[k].load_state_dict(sd)

    def export(self) -> Path:
        r = self.recipe
        keep = getattr(r, "export_modules", None) or tuple(r.modules)
        mods = {k: (self.ema[k].shadow if k in self.ema else r.modules[k]) for k in keep}
        card = {"steps": self.step, "train_wall_s": round(self._elapsed(), 1), "seed": self.seed,
                "device": str(self.device)}
        card.update(self._with_ema(r.evaluate) or {})
        card.update(r.export_card() or {})
        name = self.name or r.name or f"{r.kind}-model"
        return checkpoints.save_model(self.out_dir, name, r.kind, mods, r.export_config(), card)

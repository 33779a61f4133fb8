"""Scale-out on an existing engine: ``torchrun`` starts the processes, ``torch.distributed`` joins them,
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients.

``ctstudio train ... --processes N`` re-executes itself under ``torchrun --standalone --nproc-per-node N``
(or a user runs ``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m ctstudio.cli train
...`` directly). Each process reads its place from the environment torchrun sets (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``): :func:`from_env`. :func:`init` joins the process group: ``nccl`` on CUDA (one GPU per
local rank), ``gloo`` on the CPU.

How the trainer uses it (the shape of pytorch/examples ``ddp-tutorial-series/multigpu_torchrun.py``):

- **the batch stream is sharded like DistributedSampler does it**: every rank draws the same global batch
  (``batch_size`` per process x ``world_size``) from the same seeded data generator -- so the epoch
  permutation, the crops and the flips are the ones a single process with the global batch would draw --
  and keeps its own contiguous ``1/world_size`` of it (:func:`shard_batch`). Because the data generator's
  state is the same on every rank, rank 0's checkpoint holds the data order of all of them;
- **the networks are wrapped in DDP** (:func:`wrap`); a recipe calls the wrapper
  (:class:`DistributedNet`), which runs DDP's forward (gradients all-reduced in ``backward``) and reads every
  other attribute (``D.cls``, ``model.sigma_data``) from the plain module, which DDP does not forward;
- **torch's random numbers differ per rank** (seed + rank: each rank's noise is its own), and a checkpoint
  keeps every rank's generator state, so a resumed distributed run continues exactly;
- **the ranks agree** on stopping (:func:`any_rank`: a SIGTERM seen by one rank stops all at the same
  step) and the logged losses are the mean over the ranks (:func:`mean_over_ranks`), i.e. the loss of the
  global batch;
- **only rank 0 writes**: checkpoints, events, previews, the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from ctstudio.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run (a single process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, events, previews and the model."""
        return self.rank == 0


SINGLE = DistInfo()


def from_env(environ=None) -> DistInfo:
    """The rank, local rank and world size torchrun put in the environment (none there: a single process)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        info = DistInfo(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]))
    except ValueError:
        raise ConfigError("RANK / LOCAL_RANK / WORLD_SIZE in the environment are not whole numbers",
                          hint="start distributed training with torchrun or ctstudio train --processes N") from None
    if not 0 <= info.rank < info.world_size or info.world_size < 1:
        raise ConfigError(f"rank {info.rank} of world size {info.world_size} makes no sense",
                          hint="start distributed training with torchrun or ctstudio train --processes N")
    return info


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA, ``gloo`` for everything else."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(info: DistInfo, device: torch.device, timeout_s: float = 86400.0) -> torch.device:
    """Join the process group (once per process); returns the device this rank trains on (cuda:LOCAL_RANK).

    ``timeout_s`` bounds a collective's wait. It is long (a day) because the Train tab pauses a run by
    stopping its processes one after another, and a rank stopped inside an all-reduce waits out the pause;
    a process that dies is noticed at once anyway (its sockets close, and torchrun ends the others)."""
    device = torch.device(device)
    if not info.enabled:
        return device
    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {info.local_rank} has no GPU ({torch.cuda.device_count()} visible)",
                              hint="start at most one process per GPU (--nproc-per-node)")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"distributed training runs on CUDA (nccl) or the CPU (gloo), not {device.type}",
                          hint="use --device cuda or --device cpu with several processes")
    if not tdist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        tdist.init_process_group(backend_for(device), timeout=timedelta(seconds=timeout_s), **kwargs)
    return device


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()


def shard_batch(batch: Any, info: DistInfo) -> Any:
    """This rank's contiguous part of a global batch (a tensor, or a tuple / list / dict of them, split on dim 0)."""
    if not info.enabled:
        return batch
    if isinstance(batch, torch.Tensor):
        n = batch.shape[0]
        if n % info.world_size:
            raise ConfigError(f"a batch of {n} cannot be split over {info.world_size} processes")
        per = n // info.world_size
        return batch[info.rank * per:(info.rank + 1) * per]
    if isinstance(batch, dict):
        return {k: shard_batch(v, info) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard_batch(v, info) for v in batch)
    raise TypeError(f"cannot shard a batch of type {type(batch).__name__}")


def _collective_device(device: torch.device) -> torch.device:
    return torch.device(device) if torch.device(device).type == "cuda" else torch.device("cpu")


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (all ranks must call it at the same step)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device(device))
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must report the same keys)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device(device))
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    t /= info.world_size
    return dict(zip(keys, t.cpu().tolist()))


def gather_rng_states(state: torch.Tensor, info: DistInfo, device: torch.device) -> list[torch.Tensor]:
    """Every rank's generator state (a uint8 tensor of the same length on each rank), in rank order."""
    if not info.enabled:
        return [state]
    dev = _collective_device(device)
    local = state.to(dev)
    out = [torch.empty_like(local) for _ in range(info.world_size)]
    tdist.all_gather(out, local)
    return [t.cpu() for t in out]


def wrap(module: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel (its parameters broadcast from rank 0 now, gradients averaged
    in every ``backward``). ``find_unused``: some steps leave parameters without a gradient (GGCL's
    generator loss does not use the U-Net critic's feature head)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = torch.device(device)
    ids = [device] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)


class DistributedNet:
    """What a recipe calls instead of a module in a distributed run: DDP's forward; every other attribute is
    the plain module's (DDP forwards none: ``D.cls``, ``model.sigma_data``)."""

    def __init__(self, ddp: nn.Module, module: nn.Module):
        self.ddp = ddp
        self.module = module

    def __call__(self, *args, **kwargs):
        return self.ddp(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.module, name)

"""Run under torchrun by ``test_train_ddp.py`` (not a test itself): distributed training runs of the one trainer
on the CPU (gloo), each rank's parameters compared after every step by an all-gather done here, outside the
trainer. Rank 0 writes what it saw to ``RESULT`` as JSON.

``python -m torch.distributed.run --standalone --nproc-per-node 2 ddp_worker.py DATA ICNET_CONFIG OUT RESULT``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

from ctstudio.training import distributed
from ctstudio.training.recipes import build_recipe
from ctstudio.training.trainer import Trainer


def flat_parameters(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for m in trainer.modules.values() for p in m.parameters()])


def train(kind: str, config: str, data: Path, out: Path, steps: int, dist, resume: bool = False) -> dict:
    """One run; the logged loss and the largest parameter difference between ranks after every step."""
    torch.manual_seed(0)
    trainer = Trainer(build_recipe(kind, config, data), out_dir=out, max_steps=steps, checkpoint_every=3,
                      device="cpu", seed=0, data_dir=data, log_every=1, dist=dist)
    losses, diffs = [], []
    for ev in trainer.job(resume=resume):
        if ev["stage"] == "step":
            losses.append(ev["loss"])
            p = flat_parameters(trainer)
            every = [torch.empty_like(p) for _ in range(dist.world_size)]
            tdist.all_gather(every, p)
            diffs.append(max(float((q - every[0]).abs().max()) for q in every))
    return {"losses": losses, "max_param_diff": diffs}


def main(data: str, icnet_config: str, out: str, result: str) -> None:
    torch.set_num_threads(1)
    dist = distributed.from_env()
    distributed.init(dist, torch.device("cpu"))
    out_root = Path(out)
    res = {"world_size": dist.world_size,
           "icnet": train("icnet", icnet_config, Path(data), out_root / "icnet", 6, dist),
           "icnet_first3": train("icnet", icnet_config, Path(data), out_root / "icnet-resumed", 3, dist),
           "icnet_resumed": train("icnet", icnet_config, Path(data), out_root / "icnet-resumed", 6, dist, resume=True),
           "score": train("score", "tiny", Path(data), out_root / "score", 4, dist)}
    if dist.is_main:
        Path(result).write_text(json.dumps(res))
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:5])

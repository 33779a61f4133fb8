"""Scale-out with torchrun + DDP (ctstudio/training/distributed.py): two gloo processes on the CPU.

The worker (ddp_worker.py, run under torchrun) compares the ranks' parameters after every step with its own
all-gather, outside the trainer. The two-process losses are compared with a single process trained on twice
the batch: the same global batches are drawn (the data generator is shared) and DDP averages the two halves'
gradients, which for a mean loss is the full batch's gradient, so the curves agree to float32 rounding.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ctstudio.errors import ConfigError
from ctstudio.training import distributed
from ctstudio.training.distributed import DistInfo

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def icnet_mean_l1(tmp_path_factory):
    """The tiny IC-Net with a plain mean L1 (roi_loss off: a ratio of sums would not average over ranks)."""
    d = tmp_path_factory.mktemp("cfg")
    per_process, doubled = d / "icnet4.json", d / "icnet8.json"
    per_process.write_text(json.dumps({"base": "tiny", "roi_loss": False}))  # batch_size 4 per process
    doubled.write_text(json.dumps({"base": "tiny", "roi_loss": False, "batch_size": 8}))
    return per_process, doubled


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, phantom_file, icnet_mean_l1):
    """What ddp_worker.py saw in a 2-process gloo run under torchrun."""
    out = tmp_path_factory.mktemp("ddp")
    result = out / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        str(WORKER), str(phantom_file), str(icnet_mean_l1[0]), str(out / "runs"), str(result)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("run", ["icnet", "score"])
def test_parameters_are_identical_on_both_ranks_after_every_step(two_ranks, run):
    assert two_ranks["world_size"] == 2
    diffs = two_ranks[run]["max_param_diff"]
    assert len(diffs) == len(two_ranks[run]["losses"]) > 0
    assert diffs == [0.0] * len(diffs)  # bit-identical: every rank applied the same averaged gradient


@pytest.mark.slow
def test_two_processes_follow_one_process_with_twice_the_batch(two_ranks, phantom_file, icnet_mean_l1, tmp_path):
    from ctstudio.training.recipes import build_recipe
    from ctstudio.training.trainer import Trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = Trainer(build_recipe("icnet", str(icnet_mean_l1[1]), phantom_file), out_dir=tmp_path, max_steps=6,
                      checkpoint_every=3, device="cpu", seed=0, data_dir=phantom_file, log_every=1)
    single = [ev["loss"] for ev in trainer.job() if ev["stage"] == "step"]
    double = two_ranks["icnet"]["losses"]
    assert len(single) == len(double) == 6
    assert len(set(np.round(single, 6))) == 6  # the loss moves: a curve, not a constant
    # float32 rounding of sums taken in another order (measured: 7e-8 relative), amplified a little by Adam
    np.testing.assert_allclose(double, single, rtol=1e-5)


@pytest.mark.slow
def test_a_distributed_run_resumes_exactly(two_ranks):
    full = two_ranks["icnet"]["losses"]
    assert two_ranks["icnet_first3"]["losses"] == full[:3]
    assert two_ranks["icnet_resumed"]["losses"] == full[3:]  # every rank's generator state came back


def test_a_batch_is_split_into_contiguous_shares():
    batch = {"x": torch.arange(8).reshape(8, 1), "pair": (torch.arange(8), torch.arange(8) * 10)}
    second = distributed.shard_batch(batch, DistInfo(rank=1, world_size=2))
    assert second["x"].reshape(-1).tolist() == [4, 5, 6, 7]
    assert second["pair"][1].tolist() == [40, 50, 60, 70]
    first = distributed.shard_batch(batch, DistInfo(rank=0, world_size=2))
    assert first["pair"][0].tolist() == [0, 1, 2, 3]
    assert distributed.shard_batch(batch, DistInfo()) is batch
    with pytest.raises(ConfigError, match="cannot be split"):
        distributed.shard_batch(torch.zeros(3), DistInfo(rank=0, world_size=2))


def test_the_place_of_a_process_comes_from_torchruns_environment():
    assert distributed.from_env({}) == DistInfo(0, 0, 1)
    assert distributed.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == DistInfo(3, 1, 4)
    with pytest.raises(ConfigError):
        distributed.from_env({"RANK": "4", "WORLD_SIZE": "4"})
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"


def test_recipes_draw_global_batches_for_the_processes(phantom_file):
    from ctstudio.training.recipes import build_recipe

    r = build_recipe("icnet", "tiny", phantom_file)
    r.set_world_size(3)
    assert r.global_batch_size() == 12
    x_hat, prior, target = next(iter(r.make_batches(None, np.random.default_rng(0))))
    assert x_hat.shape[0] == prior.shape[0] == target.shape[0] == 12


def test_a_run_resumes_only_with_as_many_processes(tmp_path, phantom_file):
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.train import TrainRequest, train

    req = TrainRequest(kind="icnet", data=phantom_file, out=tmp_path, config="tiny", device="cpu", steps=2)
    run_job(train(req))
    state = tmp_path / "checkpoint" / "state.json"
    meta = json.loads(state.read_text())
    assert meta["world_size"] == 1
    meta["world_size"] = 2
    state.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="2 process"):
        run_job(train(TrainRequest(kind="icnet", data=phantom_file, out=tmp_path, config="tiny", device="cpu",
                                   steps=4, resume=True)))


def test_processes_is_dropped_from_the_command_torchrun_runs():
    from ctstudio.commands.train import torchrun_argv

    argv = torchrun_argv("/py", ["train", "icnet", "--processes", "2", "--out", "o", "--processes=3"], 2)
    assert argv == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "ctstudio.cli",
                    "train", "icnet", "--out", "o"]

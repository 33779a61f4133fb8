"""``ctstudio train KIND --data DIR --config tiny|demo|paper|FILE --out DIR [--resume|--overwrite] [--events jsonl]``."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

NAME = "train"
HELP = "train a model (score, icnet, ...) on a folder of CT volumes"
DESCRIPTION = (
    "Train a model through the one trainer loop. Checkpoints go to OUT/checkpoint/ (continue with --resume; "
    "an OUT that holds a run is refused without --resume or --overwrite), the final model to OUT/NAME.safetensors "
    "+ OUT/NAME.json. Every event (start, step, checkpoint, preview, eval, done, error: job, stage, done, total, "
    "unit, seconds, eta, plus loss, lr, steps_per_s, path...) is appended to OUT/events.jsonl; with --events jsonl "
    "the same JSON lines are printed on stdout. SIGTERM or Ctrl-C stops the run after the current step with a "
    "checkpoint written (exit status 143 or 130); a second one stops at once. --processes N runs N processes "
    "under torchrun with DistributedDataParallel (gloo on the CPU, nccl on CUDA; batch_size is per process); "
    "the same command runs under torchrun directly: torchrun --nproc-per-node N [--nnodes M --rdzv-backend c10d "
    "--rdzv-endpoint HOST:PORT] -m ctstudio.cli train ..."
)


def add_arguments(p) -> None:
    from ctstudio.training.recipes import RECIPES

    p.add_argument("kind", choices=sorted(RECIPES), help="model kind")
    p.add_argument("--data", required=True, help="a CT volume file or a folder of volumes (NIfTI/MHA/NRRD/DICOM)")
    p.add_argument("--config", default="tiny",
                   help='tiny | demo | paper | a JSON file of config fields naming its base preset ("base": "demo")')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, help="number of steps (default: the config's)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/checkpoint")
    run.add_argument("--overwrite", action="store_true",
                     help="start over in an OUT that holds a run (its checkpoint, previews and event log are deleted)")
    p.add_argument("--events", choices=["text", "jsonl"], default="text",
                   help="progress format: text on stderr, or JSON lines on stdout")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:1, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the config's)")
    p.add_argument("--name", help="model name (default: the recipe's)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 is faster on a busy CPU)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="train with N processes on this machine (torchrun + DistributedDataParallel; one per GPU on "
                        "CUDA); each takes the config's batch_size, so the global batch is N x batch_size")
    p.add_argument("--autocast", choices=["none", "bf16"],
                   help="mixed precision of the forward passes (default: the config's; bf16 only where measured faster)")


@contextlib.contextmanager
def cancel_on_signals(token, signals=(signal.SIGTERM, signal.SIGINT)):
    """While inside, SIGTERM / SIGINT cancel ``token`` (the run stops after its step with a checkpoint); a second
    signal gets the default behaviour (stop at once). Yields the list of signal numbers received. Outside the
    main thread nothing is installed."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum, frame):
        for s, h in previous.items():
            signal.signal(s, h)
        received.append(signum)
        token.cancel(f"{signal.Signals(signum).name} received")

    for s in signals:
        signal.signal(s, handler)
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def torchrun_argv(python: str, argv: list[str], processes: int) -> list[str]:
    """``argv`` (this command line, without the program) re-run under torchrun with ``processes`` processes;
    ``--processes`` itself is dropped (torchrun's WORLD_SIZE says it to the processes)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--processes":
            skip = True
            continue
        if a.startswith("--processes="):
            continue
        rest.append(a)
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(processes)}",
            "-m", "ctstudio.cli", *rest]


def _launch_torchrun(args, req) -> int:
    """Check what can be checked once, then become torchrun (same pid: a window's pid file and signals reach it)."""
    import os

    from ctstudio.errors import InputError
    from ctstudio.pipelines.train import check_out

    if args.processes < 1:
        raise InputError(f"--processes must be 1 or more, not {args.processes}")
    check_out(req)
    argv = torchrun_argv(sys.executable, sys.argv[1:], args.processes)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover  (execv does not return)


def run(args) -> int:
    import os
    from pathlib import Path

    from ctstudio.jobs import CancelToken, run_job
    from ctstudio.pipelines.train import TrainRequest, train
    from ctstudio.training.events import JsonlPrinter, TextPrinter

    req = TrainRequest(kind=args.kind, data=Path(args.data), out=Path(args.out), config=args.config,
                       steps=args.steps, resume=args.resume, overwrite=args.overwrite, device=args.device, seed=args.seed,
                       checkpoint_every=args.checkpoint_every, name=args.name, threads=args.threads,
                       autocast=args.autocast)
    world = os.environ.get("WORLD_SIZE")
    if world is None and args.processes != 1:
        return _launch_torchrun(args, req)
    if world is not None and args.processes not in (1, int(world)):
        from ctstudio.errors import ConfigError

        raise ConfigError(f"--processes {args.processes} under torchrun with {world} processes",
                          hint="leave --processes out when starting with torchrun")
    token = CancelToken()
    with cancel_on_signals(token) as received:
        summary = run_job(train(req, cancel=token), JsonlPrinter() if args.events == "jsonl" else TextPrinter())
    if summary.cancelled and int(os.environ.get("RANK", 0)):  # rank 0 says it for the run
        return 128 + int(received[0] if received else signal.SIGTERM)
    if summary.cancelled:
        print(f"cancelled ({token.reason}) at step {summary.steps_done} of {summary.max_steps}; checkpoint written "
              f"to {summary.checkpoint}; continue with --resume", file=sys.stderr)
        return 128 + int(received[0] if received else signal.SIGINT)
    return 0

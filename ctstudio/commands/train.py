"""``ctstudio train KIND --data DIR --config tiny|demo|paper|FILE --out DIR [--resume] [--events jsonl]``."""

from __future__ import annotations

NAME = "train"
HELP = "train a model (score, icnet, ...) on a folder of CT volumes"
DESCRIPTION = (
    "Train a model through the one trainer loop. Checkpoints go to OUT/checkpoint/ (resume with --resume), "
    "the final model to OUT/NAME.safetensors + OUT/NAME.json. With --events jsonl one JSON object per line "
    "is printed on stdout (step, loss, lr, steps_per_s, eta_s, checkpoint, preview, done, error)."
)


def add_arguments(p) -> None:
    from ctstudio.training.recipes import RECIPES

    p.add_argument("kind", choices=sorted(RECIPES), help="model kind")
    p.add_argument("--data", required=True, help="a CT volume file or a folder of volumes (NIfTI/MHA/NRRD/DICOM)")
    p.add_argument("--config", default="tiny", help="tiny | demo | paper | a JSON file of config fields")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, help="number of steps (default: the config's)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--events", choices=["text", "jsonl"], default="text",
                   help="progress format: text on stderr, or JSON lines on stdout")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the config's)")
    p.add_argument("--name", help="model name (default: the recipe's)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 is faster on a busy CPU)")


def run(args) -> int:
    import torch

    from ctstudio.training.events import JsonlPrinter, TextPrinter
    from ctstudio.training.recipes import build_recipe
    from ctstudio.training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)  # initial weights; resume then restores everything else
    recipe = build_recipe(args.kind, args.config, args.data)
    cfg = recipe.config
    steps = args.steps or getattr(cfg, "steps", 1000)
    every = args.checkpoint_every or getattr(cfg, "checkpoint_every", 500)
    cb = JsonlPrinter() if args.events == "jsonl" else TextPrinter()
    trainer = Trainer(recipe, out_dir=args.out, max_steps=steps, checkpoint_every=every, device=device,
                      seed=args.seed, callback=cb, data_dir=args.data, name=args.name)
    trainer.run(resume=args.resume)
    return 0

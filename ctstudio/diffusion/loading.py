"""Load trained generation models (score model, IC-Net) from model files into ready-to-run modules."""

from __future__ import annotations

from ctstudio import checkpoints
from ctstudio.diffusion.sde import VESDE
from ctstudio.imaging.intensity import HURange

#: the bundled demo models (resources/models/)
DEFAULT_SCORE_MODEL = "score-k2-demo"
DEFAULT_ICNET = "icnet-demo"


def load_score_model(name_or_path=DEFAULT_SCORE_MODEL, device="cpu"):
    """``(ScoreModel in eval mode, VESDE, meta)``; meta["hu_range"] is an HURange."""
    from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig

    meta, tensors = checkpoints.load_model(name_or_path, kind="score")
    with checkpoints.config_fields(meta, "score model") as cfg:
        model = ScoreModel(ScoreUNetConfig.from_dict(cfg["unet"]))
        sde = VESDE(**cfg["sde"])
        meta["hu_range"] = HURange.from_dict(cfg["hu_range"])
        meta["k"] = int(cfg["k"])
        meta["image_size"] = int(cfg["image_size"])
        # trained with clean prior slices as a condition (losses.dsm_loss cond_prob): it can sample conditionally
        meta["conditional"] = float((cfg.get("training") or {}).get("cond_prob", 0.0)) > 0
    checkpoints.load_modules(meta, tensors, {"model": model}, device)
    return model, sde, meta


def load_icnet(name_or_path=DEFAULT_ICNET, device="cpu"):
    """``(ICNet in eval mode, meta)``; meta["roi"] is an HURange."""
    from ctstudio.models.icnet import ICNet, ICNetConfig

    meta, tensors = checkpoints.load_model(name_or_path, kind="icnet")
    with checkpoints.config_fields(meta, "IC-Net") as cfg:
        net = ICNet(ICNetConfig.from_dict(cfg["net"]))
        meta["roi"] = HURange.from_dict(cfg["roi"])
    checkpoints.load_modules(meta, tensors, {"net": net}, device)
    return net, meta


def model_version(meta: dict) -> str:
    card = meta.get("card", {})
    return str(card.get("model_version") or f"{meta.get('name')}@{card.get('steps', '?')}steps")


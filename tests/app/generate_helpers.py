"""Shared by the Generate-tab and models-panel tests: a tiny random-weight score model in a model folder."""

from __future__ import annotations

from pathlib import Path


def save_tiny_score_model(folder: Path, name: str = "tiny-score", k: int = 2, image_size: int | None = None) -> Path:
    """A tiny untrained K-slice score model saved like a real one (fast; its output is noise-like)."""
    import dataclasses

    import torch

    from ctstudio import checkpoints
    from ctstudio.models.score_unet import ScoreModel
    from ctstudio.training.recipe_score import ScoreTrainConfig, model_config

    cfg = ScoreTrainConfig.tiny()
    cfg = dataclasses.replace(cfg, k=k, **({"image_size": image_size} if image_size else {}))
    torch.manual_seed(0)
    m = ScoreModel(cfg.unet())
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return checkpoints.save_model(folder, name, "score", {"model": m}, model_config(cfg),
                                  {"summary": f"tiny random-weight test model {name}"})

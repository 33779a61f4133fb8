"""3D cGAN networks: shapes, identity start, one training step of the recipe."""

import numpy as np
import pytest
import torch

from ctstudio.models.unet3d import PatchCritic3D, UNet3DGenerator


@pytest.fixture(scope="module")
def small_chest(shared_data, tmp_path_factory):
    """A 40 x 96 x 96 crop of the real chest CT (fast to load)."""
    from ctstudio.io import read_volume, write_volume

    v = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz")
    d = tmp_path_factory.mktemp("chest")
    write_volume(v.with_array(v.array[:40, 200:296, 200:296].copy()), d / "chest_crop.nii.gz")
    return d


@pytest.mark.parametrize("block,depth", [(16, 2), (32, 3)])
def test_shapes(block, depth):
    G = UNet3DGenerator(base=4, depth=depth, residual=False)
    C = PatchCritic3D(base=4, n_layers=depth)
    x = torch.rand(2, 1, block, block, block) * 2 - 1
    y = G(x)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1.0
    s = C(x, y)
    side = block // 2 ** depth
    assert s.shape == (2, 1, side, side, side)
    assert not any(isinstance(m, torch.nn.ConvTranspose3d) for m in G.modules())
    with pytest.raises(ValueError):
        G(torch.zeros(1, 1, 10, 16, 16))


def test_residual_generator_starts_at_the_identity():
    G = UNet3DGenerator(base=4, depth=2, residual=True)
    x = torch.rand(1, 1, 16, 16, 16)
    assert torch.equal(G(x), x)


@pytest.mark.parametrize("adversarial", ["lsgan", "wgan-gp"])
def test_one_training_step_updates_both_networks(small_chest, adversarial):
    import dataclasses

    from ctstudio.training.recipe_cgan import CGANConfig, CGANRecipe

    cfg = dataclasses.replace(CGANConfig.tiny(), adversarial=adversarial)
    r = CGANRecipe(cfg, small_chest)
    batch = next(iter(r.make_batches(None, np.random.default_rng(0))))
    assert batch["cond"].shape == batch["target"].shape == (2, 1, 16, 16, 16)
    assert not torch.equal(batch["cond"], batch["target"])  # denoise: the condition is noisy
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in r.modules.items()}
    losses = r.train_step(batch, 0)
    assert np.isfinite(losses["loss"]) and losses["G/l1_hu"] > 0
    for k, m in r.modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters())), k


@pytest.mark.slow
def test_cgan_training_resumes_exactly_and_exports_an_evaluated_model(small_chest, tmp_path):
    from ctstudio import checkpoints
    from ctstudio.training.recipe_cgan import build
    from ctstudio.training.trainer import Trainer

    def run(out, steps, resume=False):
        t = Trainer(build("tiny", small_chest), out_dir=out, max_steps=steps, checkpoint_every=2, seed=5,
                    data_dir=small_chest, name="c")
        return t.run(resume=resume)

    path = run(tmp_path / "a", 4)
    straight = checkpoints.load_tensors(path)
    run(tmp_path / "b", 2)
    resumed = checkpoints.load_tensors(run(tmp_path / "b", 4, resume=True))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    meta = checkpoints.read_meta(path)
    assert meta["kind"] == "cgan" and meta["config"]["degradation"]["task"] == "denoise"
    methods = [r["method"] for r in meta["card"]["evaluation"]["rows"]]
    assert methods[0].startswith("degraded input") and methods[1].startswith("cGAN output")

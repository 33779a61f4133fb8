"""GGCL / StarGAN networks: shapes at several sizes, the identity start, one training step."""

import numpy as np
import pytest
import torch

from ctstudio.models.stargan import StarGenerator, UNetDiscriminator


@pytest.mark.parametrize("size,levels", [(32, 3), (64, 4), (64, 5)])
@pytest.mark.parametrize("n_domains", [2, 3])
def test_shapes(size, levels, n_domains):
    G = StarGenerator(n_domains, conv_dim=8, n_res=1)
    D = UNetDiscriminator(size, n_domains, conv_dim=8, n_levels=levels, feature_channels=G.feature_channels)
    x = torch.rand(2, 1, size, size) * 2 - 1
    c = torch.nn.functional.one_hot(torch.tensor([0, n_domains - 1]), n_domains).float()
    y, gf = G(x, c)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1.0  # tanh output
    src, cls, df = D(x)
    assert src.shape == (2, 1, size // 2 ** levels, size // 2 ** levels)
    assert cls.shape == (2, n_domains)
    assert df.shape == gf.shape == (2, 16, size // 4, size // 4)


def test_generator_has_no_transposed_convs_and_rejects_bad_sizes():
    G = StarGenerator(2, conv_dim=8, n_res=1)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    assert any(isinstance(m, torch.nn.PixelShuffle) for m in G.modules())
    with pytest.raises(ValueError):
        G(torch.zeros(1, 1, 30, 30), torch.zeros(1, 2))
    with pytest.raises(ValueError):
        UNetDiscriminator(64, 2, n_levels=6)  # 1 px at the bottom
    D = UNetDiscriminator(32, 2, conv_dim=8, n_levels=3)
    assert any(hasattr(m, "weight_orig") for m in D.modules())  # spectral norm
    with pytest.raises(ValueError):
        D(torch.zeros(1, 1, 64, 64))


def test_residual_generator_starts_at_the_identity():
    G = StarGenerator(2, conv_dim=8, n_res=1, residual=True)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    y, _ = G(x, torch.tensor([[0.0, 1.0]]))
    assert torch.equal(y, x)


@pytest.fixture(scope="module")
def small_pair(shared_data, tmp_path_factory):
    """10 x 96 x 96 crops of the real phantom's UB and YA reconstructions (fast to load)."""
    from ctstudio.io import read_volume, write_volume

    d = tmp_path_factory.mktemp("pair")
    src = shared_data / "head-phantom-philips-2kernels"
    for k, f in (("UB", "phantom_UB-std_slices24-55.nii.gz"), ("YA", "phantom_YA-bone_slices24-55.nii.gz")):
        v = read_volume(src / f)
        write_volume(v.with_array(v.array[10:20, 150:246, 200:296].copy()), d / f"crop_{k}.nii.gz")
    return d


def test_one_training_step_updates_both_networks(small_pair):
    from ctstudio.training.recipe_ggcl import build

    r = build("tiny", small_pair)
    batch = next(iter(r.make_batches(None, np.random.default_rng(0))))
    assert batch["x"].shape == (2, 1, 32, 32) and batch["pair"].shape == (2, 1, 32, 32)
    assert not torch.equal(batch["org"], batch["trg"])
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in r.modules.items()}
    torch.manual_seed(0)
    losses = r.train_step(batch, 0)
    assert {"D/ggcl", "D/gp", "G/cyc", "G/pair", "loss"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    for k, m in r.modules.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[k], m.parameters())]
        assert any(changed), f"{k} did not change"


@pytest.mark.slow
def test_ggcl_training_resumes_exactly(small_pair, tmp_path):
    """Two steps, stop, resume for two more == four steps straight (the GAN's n_critic loop, the GP's
    random mixing and the PatchNCE sampling all replay)."""
    from ctstudio import checkpoints
    from ctstudio.training.recipe_ggcl import build
    from ctstudio.training.trainer import Trainer

    def run(out, steps, resume=False):
        t = Trainer(build("tiny", small_pair), out_dir=out, max_steps=steps, checkpoint_every=2, seed=3,
                    data_dir=small_pair, name="m")
        return t.run(resume=resume)

    straight = checkpoints.load_tensors(run(tmp_path / "a", 4))
    run(tmp_path / "b", 2)
    resumed = checkpoints.load_tensors(run(tmp_path / "b", 4, resume=True))
    assert set(straight) == set(resumed) and all(k.startswith("G.") for k in straight)  # the critic is not shipped
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)

"""Training previews of the translation models: GGCL (source | converted | real target kernel) and the 3D cGAN
(degraded | restored | clean), written by the trainer with every checkpoint, panels checked against the data
read independently."""

import numpy as np
import pytest

from ctstudio.io import read_volume
from ctstudio.jobs import run_job
from ctstudio.pipelines.train import TrainRequest, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ggcl_preview_shows_the_held_back_source_its_conversion_and_the_real_other_kernel(shared_data, tmp_path):
    from ctstudio.training.recipe_ggcl import build

    data = shared_data / "head-phantom-philips-2kernels"
    recipe = build("tiny", data)
    panels = recipe.preview(0)
    ub = read_volume(data / "phantom_UB-std_slices24-55.nii.gz").array
    ya = read_volume(data / "phantom_YA-bone_slices24-55.nii.gz").array
    holdout = recipe.config.holdout
    assert panels.shape == (3, *ub.shape[1:])
    np.testing.assert_array_equal(panels[0], ub[-holdout])
    np.testing.assert_array_equal(panels[2], ya[-holdout])
    assert np.isfinite(panels[1]).all() and not np.array_equal(panels[1], panels[0])
    summary = run_job(train(TrainRequest(kind="ggcl", data=data, out=tmp_path, config="tiny", device="cpu",
                                         steps=2, checkpoint_every=2)))
    assert summary.model_path.is_file()
    assert sorted(p.name for p in (tmp_path / "previews").glob("*.png")) == ["step0000002.png"]


def test_cgan_preview_shows_degraded_restored_and_clean_middle_held_back_slice(shared_data, tmp_path):
    from ctstudio.training.recipe_cgan import build

    data = shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz"
    recipe = build("tiny", data)
    c = recipe.config
    panels = recipe.preview(0)
    vol = read_volume(data).array.astype(np.float32)
    slab = vol[-c.holdout:]
    y0, x0 = (slab.shape[1] - c.eval_crop) // 2, (slab.shape[2] - c.eval_crop) // 2
    clean = slab[len(slab) // 2, y0:y0 + c.eval_crop, x0:x0 + c.eval_crop]
    assert panels.shape == (3, c.eval_crop, c.eval_crop)
    np.testing.assert_array_equal(panels[2], clean)
    noise = panels[0] - clean
    assert noise.std() > 5  # Poisson noise of the denoise task, in HU
    assert np.isfinite(panels[1]).all() and panels[1].min() >= c.hu_lower and panels[1].max() <= c.hu_upper
    np.testing.assert_array_equal(recipe.preview(0)[0], panels[0])  # a fixed seed: the same degraded input
    summary = run_job(train(TrainRequest(kind="cgan", data=data, out=tmp_path, config="tiny", device="cpu",
                                         steps=2, checkpoint_every=2)))
    assert summary.model_path.is_file()
    assert [p.name for p in (tmp_path / "previews").glob("*.png")] == ["step0000002.png"]

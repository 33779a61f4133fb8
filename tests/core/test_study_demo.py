"""The demo study's synthetic pool: output of the bundled score model (seeded, provenance sidecar), or, without
torch, degraded copies labelled as NOT model output in the templates and demo.json."""

import json

import numpy as np
import pytest

from ctstudio.studies import demo
from ctstudio.studies.spec import load_spec, resolve_pools

generated_case = pytest.importorskip("ctstudio.pipelines.demo_cases").generated_case


def test_a_generated_case_covers_the_real_crops_slices_and_stays_close_to_them():
    from ctstudio.io import read_volume

    vol = read_volume(demo.SAMPLE)
    z0 = demo.STARTS[1]
    fake = generated_case(vol, z0, 2, seed=demo.SEED_BASE)
    real = vol.array[z0:z0 + 2].astype(float)
    assert fake.shape == (2, *vol.shape[1:])
    assert np.allclose(fake.origin, vol.index_to_lps(z0, 0, 0)) and np.allclose(fake.spacing, vol.spacing)
    assert fake.provenance.model == "score-k2-demo" and fake.provenance.parameters["seed"] == demo.SEED_BASE
    # the slice next to the real seed follows the anatomy (README: ~15 HU on the first slice), and is not a copy
    mae = np.abs(fake.array[-1] - real[-1]).mean()
    assert 2 < mae < 60, mae
    again = generated_case(vol, z0, 2, seed=demo.SEED_BASE)  # seeded: the same case again
    assert np.array_equal(again.array, fake.array)


def test_without_a_model_the_demo_writes_degraded_copies_and_says_so(tmp_path):
    specs = demo.make_demo(tmp_path / "d")  # no generate_case: a reader-only build, or study demo --degraded
    about = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert about["synthetic_pool"] == "degraded" and "NOT model output" in about["note"]
    for s in specs:
        text = s.read_text()
        assert text.startswith("# !! THIS COPY OF THE DEMO HAS NO MODEL OUTPUT !!")
        assert load_spec(s).description.startswith("Demo: real headsq crops vs DEGRADED COPIES")
    names = sorted(c.path.rsplit("/", 1)[-1] for c in resolve_pools(load_spec(specs[0])) if c.cls == "synthetic")
    assert names == [f"headsq_degraded_{i}.nii.gz" for i in range(4)]
    side = json.loads((tmp_path / "d" / "cases" / "synthetic" / "headsq_degraded_0.provenance.json").read_text())
    assert side["made_by"].startswith("degraded copy") and side["model"] is None


def test_the_bundled_templates_say_the_pool_is_model_output():
    for t in demo.TEMPLATES.glob("*.toml"):
        assert "score-k2-demo" in t.read_text() and "NOT model output" not in t.read_text()
        assert "score-k2-demo" in load_spec(t).description

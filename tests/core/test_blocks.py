"""32³ tiling with overlap + blending: exact identity reconstruction, seams, progress and cancel."""

import numpy as np
import pytest

from ctstudio.errors import Cancelled, InputError
from ctstudio.translation.blocks import apply_blockwise, block_starts, blend_weights, seam_score


def test_block_starts_cover_the_axis():
    assert block_starts(64, 32, 0) == [0, 32]
    assert block_starts(70, 32, 0) == [0, 32, 38]
    assert block_starts(64, 32, 8) == [0, 24, 32]
    assert block_starts(32, 32, 8) == [0]
    with pytest.raises(InputError):
        block_starts(64, 32, 32)
    assert (blend_weights(32, 8) > 0).all() and blend_weights(32, 8)[16] == 1.0


@pytest.mark.parametrize("shape", [(40, 50, 37), (32, 32, 32), (20, 45, 33), (64, 33, 70)])
@pytest.mark.parametrize("overlap", [0, 8, 16])
def test_identity_model_reconstructs_its_input_exactly(shape, overlap):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3071, size=shape).astype(np.int16)
    calls = []
    out = apply_blockwise(hu, lambda b: calls.append(b.shape) or b, block=32, overlap=overlap, batch_size=5)
    assert out.shape == hu.shape
    assert np.array_equal(np.rint(out).astype(np.int16), hu)
    assert np.abs(out - hu).max() < 1e-6
    assert all(c[1:] == (32, 32, 32) for c in calls)


def test_overlap_and_blending_remove_block_seams():
    # a block model with a per-block error (a constant offset that differs from block to block),
    # the kind of artefact that makes "artifact blocks": abutting tiles show it as seams.
    rng = np.random.default_rng(1)
    hu = rng.normal(0, 20, size=(64, 96, 96)).astype(np.float32)  # texture without a preferred position

    def biased(batch):
        return batch + rng.normal(0, 20, size=(len(batch), 1, 1, 1))

    hard = apply_blockwise(hu, biased, block=32, overlap=0)
    soft = apply_blockwise(hu, biased, block=32, overlap=16)
    s_hard = seam_score(hard, block=32, overlap=0)
    s_soft = seam_score(soft, block=32, overlap=16)
    s_real = seam_score(hu, block=32, overlap=0)
    assert s_real["ratio"] == pytest.approx(1.0, abs=0.05)
    assert s_hard["ratio"] > 1.2  # abutting blocks: visibly larger steps at the borders
    assert s_soft["ratio"] < 1.05  # overlap + blending: borders look like the inside
    # nor do seams hide at the abutting grid's positions
    assert seam_score(soft, block=32, overlap=0)["ratio"] < 1.05


def test_progress_events_and_cancel():
    hu = np.zeros((32, 64, 64), np.float32)
    events = []
    apply_blockwise(hu, lambda b: b, block=32, overlap=0, batch_size=1, callback=events.append)
    assert [e["done"] for e in events] == [1, 2, 3, 4] and events[-1]["total"] == 4
    assert [e["blocks"] for e in events] == [[(0, 0, 0)], [(0, 0, 32)], [(0, 32, 0)], [(0, 32, 32)]]
    n = {"calls": 0}

    def fn(b):
        n["calls"] += 1
        return b

    with pytest.raises(Cancelled):
        apply_blockwise(hu, fn, block=32, overlap=0, batch_size=1, cancel=lambda: n["calls"] >= 2)
    assert n["calls"] == 2
    with pytest.raises(InputError):
        apply_blockwise(hu, lambda b: b[:, :16], block=32)

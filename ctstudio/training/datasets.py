"""Training data: adjacent-slice stacks and slice pairs from a folder of CT volumes (numpy, in HU).

Slice order convention: a stack lists its slices in the *generation direction*, which is the
inferior direction (towards the feet) as in the ASCII paper: channel 0 is the most superior slice,
channel K-1 the most inferior. "Inferior" is worked out from each volume's direction matrix (LPS: +z
is superior), so volumes stored either way round give the same stacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.slices import inferior_ordered, inferior_step, resize_slices  # noqa: F401 (recipes use them)
from ctstudio.io import VOLUME_SUFFIXES
from ctstudio.volume import Volume

def find_volumes(data: Path) -> list[Path]:
    """A volume file, or the volumes (files, DICOM folders) inside a folder."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise InputError("no such file or folder", path=data, hint="--data takes a CT volume or a folder of them")
    found = sorted(p for p in data.rglob("*") if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    dicom_dirs = sorted({p.parent for p in data.rglob("*.dcm")})
    found += dicom_dirs
    if not found:
        raise InputError("the folder holds no CT volumes (NIfTI/MHA/NRRD or DICOM)", path=data)
    return found


def load_volumes(data: Path) -> list[Volume]:
    return read_training_volumes(data)[0]


def read_training_volumes(data: Path) -> tuple[list[Volume], list[dict]]:
    """The volumes under ``data`` and what a model card records of each (:func:`describe_volume`)."""
    from ctstudio.io import read_volume

    paths = find_volumes(data)
    vols = [read_volume(p) for p in paths]
    return vols, [describe_volume(p, v) for p, v in zip(paths, vols)]


def describe_volume(path: Path, vol: Volume) -> dict:
    """One training file as a model card records it: path, shape (z, y, x), voxel spacing (x, y, z) in mm, kernel."""
    return {"file": str(path), "shape_zyx": [int(n) for n in vol.array.shape],
            "spacing_xyz_mm": [round(float(s), 4) for s in vol.spacing],
            "kernel": str(getattr(vol.metadata, "kernel", "") or "")}


def adjacent_stacks(volumes: list[Volume], k: int, size: int | None = None, air_pad: bool = True,
                    air_hu: float = -1024.0) -> np.ndarray:
    """All K-slice windows, (N, K, H, W) float32 HU, channels in generation order.

    ``air_pad`` adds K-1 all-air slices above the first slice of each volume, so the model also learns to
    start a volume from air (ASCII's "first slice from an all-air seed").
    """
    out = []
    for v in volumes:
        a = inferior_ordered(v, size)
        if air_pad:
            a = np.concatenate([np.full((k - 1, *a.shape[1:]), air_hu, np.float32), a])
        if a.shape[0] < k:
            continue
        idx = np.arange(a.shape[0] - k + 1)[:, None] + np.arange(k)[None]
        out.append(a[idx])
    if not out:
        raise InputError(f"no volume has {k} slices")
    return np.concatenate(out)


class ShuffledBatches:
    """Index batches over ``n`` items in shuffled epochs, whose position can be saved as JSON and restored.

    Each epoch is one ``rng.permutation(n)`` cut into batches (fewer items than a batch: topped up with
    random indices). :meth:`state` is the generator state the epoch's permutation was drawn from plus the
    batch reached, so a resumed run re-draws the same permutation and continues at the same batch without
    replaying the batches before it.
    """

    def __init__(self, n: int, batch_size: int):
        if n < 1 or batch_size < 1:
            raise InputError(f"cannot make batches of {batch_size} from {n} training items")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self._starts = range(0, self.n - self.batch_size + 1 if self.n >= self.batch_size else 1, self.batch_size)
        self._perm: np.ndarray | None = None
        self._epoch_rng: dict | None = None
        self._batch = 0

    def next(self, rng: np.random.Generator) -> np.ndarray:
        """The next batch of indices; a new epoch draws its permutation from ``rng``."""
        if self._perm is None or self._batch >= len(self._starts):
            self._epoch_rng = rng.bit_generator.state
            self._perm = rng.permutation(self.n)
            self._batch = 0
        i = self._starts[self._batch]
        self._batch += 1
        chunk = self._perm[i:i + self.batch_size]
        if len(chunk) < self.batch_size:
            chunk = np.concatenate([chunk, rng.integers(0, self.n, self.batch_size - len(chunk))])
        return chunk

    def state(self) -> dict:
        """JSON: ``{"epoch_rng": bit-generator state before the epoch's permutation, "batch": batches done}``."""
        return {} if self._perm is None else {"epoch_rng": self._epoch_rng, "batch": self._batch}

    def restore(self, state: dict | None) -> None:
        """Continue where :meth:`state` was taken (``{}`` or ``None``: from the start)."""
        if not state:
            self._perm, self._epoch_rng, self._batch = None, None, 0
            return
        self._perm = np.random.Generator(bit_generator_from_state(state["epoch_rng"])).permutation(self.n)
        self._epoch_rng = state["epoch_rng"]
        self._batch = int(state["batch"])


def random_crops(batch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One random ``size`` x ``size`` crop per item of (N, C, H, W), the same window for all channels."""
    n, _, h, w = batch.shape
    ys = rng.integers(0, h - size + 1, n)
    xs = rng.integers(0, w - size + 1, n)
    return np.stack([batch[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(zip(ys, xs))])


#: the numpy bit generators whose saved state a checkpoint may name
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def bit_generator_from_state(state: dict) -> np.random.BitGenerator:
    """A numpy bit generator set to ``state`` (``Generator.bit_generator.state``, as saved in JSON)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise InputError(f"unknown random generator {name!r} in the saved training state",
                         hint=f"one of {', '.join(BIT_GENERATORS)}; was the checkpoint edited?")
    bits = getattr(np.random, name)()
    bits.state = state
    return bits

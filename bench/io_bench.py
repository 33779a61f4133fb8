"""DICOM series load: ctstudio vs SimpleITK's ImageSeriesReader, measured in the same run.

    .venv/bin/python bench/io_bench.py [--slices 300] [--size 512] [--repeats 3] [--cache DIR]

Writes a phantom CT series once (cached under the system temp folder, reused on later runs),
then times, alternately, ctstudio.io.read_volume (thread-pool decoding) and SimpleITK's
ImageSeriesReader (GDCM) on the same files, with a warm page cache. Prints a table with the
best and median times of each and the ratio ctstudio / SimpleITK (goal: <= 0.7).
Also times a plain pydicom loop (dcmread + pixel_array + rescale, then sort by position), the
obvious pure-Python way, as a second reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_series(folder: Path, slices: int, size: int) -> Path:
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import read_volume, write_volume

    done = folder / "done.txt"
    series = folder / "series"
    if done.exists() and done.read_text() == f"{slices} {size}":
        return series
    t = time.perf_counter()
    vol = head_phantom((slices, size, size), spacing=(0.5, 0.5, 0.625), noise_sd=15.0, seed=0)
    write_volume(vol, series, format="dicom", overwrite=True)
    back = read_volume(series)
    assert np.array_equal(back.array, vol.array), "written series does not read back exactly"
    done.write_text(f"{slices} {size}")
    print(f"wrote {slices} x {size} x {size} series to {series} in {time.perf_counter() - t:.1f} s")
    return series


def load_ctstudio(series: Path) -> np.ndarray:
    from ctstudio.io import read_volume

    return read_volume(series).array


def load_pydicom(series: Path) -> np.ndarray:
    import pydicom

    slices = []
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), hu.astype(np.int16)))
    slices.sort(key=lambda t: t[0])
    return np.stack([a for _, a in slices])


def load_sitk(series: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    return sitk.GetArrayFromImage(reader.Execute())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ctstudio-io-bench")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    series = make_series(args.cache, args.slices, args.size)

    a, b = load_ctstudio(series), load_sitk(series)  # warm the page cache and the imports
    assert np.array_equal(a, b), "ctstudio and SimpleITK disagree on the voxels"
    assert np.array_equal(a, load_pydicom(series)), "the pydicom loop disagrees on the voxels"
    runs = {"ctstudio": [], "pydicom loop": [], "SimpleITK": []}
    for _ in range(args.repeats):
        for name, fn in (("ctstudio", lambda: load_ctstudio(series)),
                         ("pydicom loop", lambda: load_pydicom(series)),
                         ("SimpleITK", lambda: load_sitk(series))):
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    base = min(runs["SimpleITK"])
    base_med = statistics.median(runs["SimpleITK"])
    print(f"\nDICOM series load, {args.slices} x {args.size} x {args.size} int16, warm cache, "
          f"best of {args.repeats}")
    print(f"{'reader':<16}{'best s':>9}{'median s':>10}{'ratio (best)':>14}{'ratio (median)':>16}")
    for name, ts in runs.items():
        med = statistics.median(ts)
        print(f"{name:<16}{min(ts):>9.3f}{med:>10.3f}{min(ts) / base:>14.2f}{med / base_med:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

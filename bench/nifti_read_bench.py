"""Reading a gzip NIfTI: the integrity check's decompression reused (one decompression) against checking and
then letting SimpleITK decompress the file again (two), on the 64x512x512 chest CT of ../shared/data, in one
process, interleaved. Prints the medians and their ratio; the voxels must be equal.

    .venv/bin/python bench/nifti_read_bench.py [--rounds 4] [PATH.nii.gz]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import SimpleITK as sitk

from ctstudio.io.integrity import check_volume_file
from ctstudio.io.itk import _check_and_read

ROOT = Path(__file__).resolve().parents[1]
CHEST = ROOT.parent / "shared" / "data" / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(CHEST))
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    p = Path(args.path)
    twice, once = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        check_volume_file(p)
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        twice.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = sitk.GetArrayFromImage(_check_and_read(p)[1])
        once.append(time.perf_counter() - t)
        assert (a == b).all(), "the two ways read different voxels"
    m2, m1 = statistics.median(twice), statistics.median(once)
    print(f"{p.name}: decompressed twice (check, then SimpleITK) {m2:.3f} s | once (ctstudio) {m1:.3f} s | "
          f"{m1 / m2:.2f}x")


if __name__ == "__main__":
    main()

"""Mutation fuzzing of everything that opens a user's file: the volume readers (DICOM, NIfTI, MHA, NRRD), the
study spec parser, the study database opener and the model loader.

Each input is a real file (from ``../shared/data`` and the bundled sample, cropped small) changed by a plan of
mutations that hypothesis draws: bit flips, truncation, inserted or deleted bytes, integers written over the
bytes, header fields set to hostile values (huge declared sizes, wrong types, wrong DICOM VRs and lengths,
safetensors header entries, JSON fields of the wrong type, SQL that damages the study database).

The contract checked on every input: it opens into a valid result (a Volume with an int16 (z, y, x) array and
positive finite spacing; a StudySpec; a Store; a loaded model) or raises a ctstudio error (a ``CTStudioError``
subclass) with a message. Anything else is a crash: another exception, a hang over the time limit (10 s), or the
worker dying (a segfault, or memory beyond the worker's address-space limit, so a declared 100000^3 volume that
gets allocated is caught).

Inputs run one at a time in a worker process (restarted after a hang or a death) with ``RLIMIT_AS`` set.

    .venv/bin/python bench/fuzz.py                      # 3000 inputs, every target
    .venv/bin/python bench/fuzz.py --examples 500 --targets nifti,dicom --seed 3

``tests/core/test_fuzz_*.py`` run a fixed-seed subset through the same harness.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "resources" / "sample" / "headsq_hu.nii.gz"
TARGETS = ("nifti", "mha", "nrrd", "dicom", "spec", "store", "model")
TIME_LIMIT_S = 10.0
MEMORY_LIMIT_BYTES = 6 * 1024 ** 3

# ----------------------------------------------------------------------------------------------------------
# seeds: small real files, written once per run


@dataclass
class Seed:
    target: str
    name: str
    path: Path  # a file, or a folder (a DICOM series)
    main: str = ""  # inside a folder: the file the mutations change ("" = the path itself)
    extra: list[str] = field(default_factory=list)  # other files of a folder that mutations may change


def _crop(vol, z, y, x):
    from ctstudio.volume import Volume

    nz, ny, nx = vol.array.shape
    z0, y0, x0 = max(0, nz // 2 - z // 2), max(0, ny // 2 - y // 2), max(0, nx // 2 - x // 2)
    arr = vol.array[z0:z0 + z, y0:y0 + y, x0:x0 + x].copy()
    return Volume(arr, spacing=vol.spacing, origin=vol.origin, direction=vol.direction)


def build_seeds(folder: Path) -> list[Seed]:
    """Write the seed files into ``folder`` (small crops of real CT; the real vendor DICOM as it is)."""
    import SimpleITK as sitk

    from ctstudio.io import read_volume, write_volume

    folder.mkdir(parents=True, exist_ok=True)
    seeds: list[Seed] = []
    head = _crop(read_volume(SAMPLE), 4, 12, 12)
    write_volume(head, folder / "head.nii.gz")
    seeds.append(Seed("nifti", "sample-gz", folder / "head.nii.gz"))
    img = sitk.ReadImage(str(folder / "head.nii.gz"))
    sitk.WriteImage(img, str(folder / "head.nii"), False)
    seeds.append(Seed("nifti", "sample-raw", folder / "head.nii"))
    sitk.WriteImage(img, str(folder / "head.nrrd"), True)
    seeds.append(Seed("nrrd", "sample-gz", folder / "head.nrrd"))
    sitk.WriteImage(img, str(folder / "head_raw.nrrd"), False)
    seeds.append(Seed("nrrd", "sample-raw", folder / "head_raw.nrrd"))
    chest_mha = SHARED / "chest-ct-siemens-kernel-pairs" / "test1_B30.mha"
    if chest_mha.exists():
        chest = _crop(read_volume(chest_mha), 3, 10, 10)
        write_volume(chest, folder / "chest.mha")
        seeds.append(Seed("mha", "siemens-zlib", folder / "chest.mha"))
        cimg = sitk.ReadImage(str(folder / "chest.mha"))
        sitk.WriteImage(cimg, str(folder / "chest_raw.mha"), False)
        seeds.append(Seed("mha", "siemens-raw", folder / "chest_raw.mha"))
    else:
        write_volume(head, folder / "head.mha")
        seeds.append(Seed("mha", "sample-zlib", folder / "head.mha"))
    series = folder / "series"
    write_volume(_crop(head, 3, 8, 8), series, format="dicom")
    files = sorted(p.name for p in series.iterdir())
    seeds.append(Seed("dicom", "own-writer", series, main=files[1], extra=files))
    philips = SHARED / "chest-ct-philips-bigbore" / "original_slice070.dcm"
    if philips.exists():
        one = folder / "philips"
        one.mkdir(exist_ok=True)
        shutil.copy(philips, one / "slice070.dcm")
        seeds.append(Seed("dicom", "philips-slice", one, main="slice070.dcm", extra=["slice070.dcm"]))
    from ctstudio.studies.fixtures import write_phantom_study

    spec = write_phantom_study(folder / "study", n_real=2, n_synthetic=2, shape=(4, 16, 16), trials=3, size=16)
    seeds.append(Seed("spec", "phantom-pair", spec))
    from ctstudio.studies.session import ReaderSession
    from ctstudio.studies.spec import load_spec
    from ctstudio.studies.store import Store

    db = folder / "study.db"
    st = Store(db)
    session = ReaderSession.open(st, load_spec(spec), "R1", prefetch=False)
    session.begin()
    session.answer(choice="left")
    st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    st.close()
    seeds.append(Seed("store", "one-answer", db))
    models = folder / "models"
    models.mkdir(exist_ok=True)
    for f in ("icnet-demo.json", "icnet-demo.safetensors"):
        shutil.copy(ROOT / "resources" / "models" / f, models / f)
    seeds.append(Seed("model", "icnet-demo", models, main="icnet-demo.safetensors",
                      extra=["icnet-demo.safetensors", "icnet-demo.json"]))
    return seeds


# ----------------------------------------------------------------------------------------------------------
# mutations: a plan is a list of tuples drawn by hypothesis (strategies below), applied in the parent

INTERESTING_INTS = [0, 1, -1, 2, 7, 8, 255, 256, 32767, -32768, 65535, 100000, 2 ** 31 - 1, -2 ** 31,
                    2 ** 32 - 1, 2 ** 63 - 1, 10 ** 15]
HOSTILE_TEXT = ["100000 100000 100000", "100000", "0", "-1", "-5 4 4", "nan", "inf", "", "abc", "1e308",
                "2 2", "1 2 3 4 5 6 7 8 9", "MET_DOUBLE", "MET_UCHAR", "MET_FLOAT", "LOCAL", "../../etc/passwd",
                "True", "False", "raw", "gzip", "bzip2", "double", "uint8", "block", "big", "(1,0,0) (0,1,0)",
                "99999999999999999999", "4 4 4", "1e-300 1 1"]
#: header fields of the NIfTI-1 header (offset, struct format)
NIFTI_FIELDS = {
    "sizeof_hdr": (0, "<i"), "dim0": (40, "<h"), "dim1": (42, "<h"), "dim2": (44, "<h"), "dim3": (46, "<h"),
    "dim4": (48, "<h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim1": (80, "<f"),
    "pixdim3": (88, "<f"), "vox_offset": (108, "<f"), "scl_slope": (112, "<f"), "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"), "sform_code": (254, "<h"), "quatern_b": (256, "<f"), "srow_x0": (280, "<f"),
    "magic": (344, "4s"),
}
NIFTI_VALUES = [0, -1, 1, 2, 3, 4, 7, 8, 16, 64, 128, 256, 512, 768, 1024, 2304, 32767, -32768, 348, 352,
                float("nan"), float("inf"), -0.0, 1e-30, 1e30, b"n+1\0", b"ni1\0", b"xxxx"]
MHA_KEYS = ["NDims", "DimSize", "ElementType", "ElementSpacing", "CompressedData", "CompressedDataSize",
            "ElementDataFile", "Offset", "TransformMatrix", "BinaryDataByteOrderMSB", "ElementNumberOfChannels",
            "HeaderSize"]
NRRD_KEYS = ["dimension", "sizes", "type", "encoding", "space directions", "space origin", "endian",
             "data file", "space", "kinds", "byte skip", "line skip"]
#: DICOM tags (group, element) the field mutations aim at
DICOM_TAGS = {
    "TransferSyntaxUID": (0x0002, 0x0010), "Modality": (0x0008, 0x0060), "SliceThickness": (0x0018, 0x0050),
    "SeriesInstanceUID": (0x0020, 0x000E), "InstanceNumber": (0x0020, 0x0013),
    "ImagePositionPatient": (0x0020, 0x0032), "ImageOrientationPatient": (0x0020, 0x0037),
    "SamplesPerPixel": (0x0028, 0x0002), "NumberOfFrames": (0x0028, 0x0008), "Rows": (0x0028, 0x0010),
    "Columns": (0x0028, 0x0011), "PixelSpacing": (0x0028, 0x0030), "BitsAllocated": (0x0028, 0x0100),
    "BitsStored": (0x0028, 0x0101), "HighBit": (0x0028, 0x0102), "PixelRepresentation": (0x0028, 0x0103),
    "RescaleIntercept": (0x0028, 0x1052), "RescaleSlope": (0x0028, 0x1053), "PixelData": (0x7FE0, 0x0010),
}
DICOM_VRS = [b"US", b"SS", b"UL", b"OB", b"OW", b"DS", b"IS", b"UI", b"CS", b"LO", b"SQ", b"UN", b"FD", b"AT",
             b"XX", b"\x00\x00"]
DICOM_VALUES = ["100000", "0", "-1", "65535", "1", "3", "7", "nan", "inf", "1e308", "abc", "", "1\\2",
                "1\\0\\0\\0\\1\\0", "0\\0\\0\\0\\0\\0", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5",
                "1.2.840.10008.1.2.2", "1.2.3.4", "MR", "-100000\\5\\5"]
JSON_VALUES = [None, True, 0, -1, 2, 10 ** 6, 10 ** 5, [10 ** 5, 10 ** 5], [1, -2], 1.5, float("nan"), "", "x", [],
               [1, 2], {}, {"a": 1}, "score",
               "cgan", 10 ** 30]
MODEL_JSON_FIELDS = ["name", "kind", "version", "config", "card", "modules", "config.net", "config.roi",
                     "config.net.base_channels", "config.net.channel_mult", "config.net.global_context",
                     "config.roi.lower", "config.roi.upper"]
ST_FIELDS = ["dtype", "shape", "data_offsets", "drop", "__metadata__", "header_len"]
ST_VALUES = ["F64", "F16", "I8", "BOOL", "X1", None, [], [100000, 100000, 100000], [-1], [2 ** 62, 2 ** 62],
             [0, 0], [0, 10 ** 12], [1], "abc", 0, 2 ** 63 - 1, {"k": 1}]
STORE_SQL = [
    "DROP TABLE responses", "DROP TABLE studies", "DROP TABLE events", "PRAGMA user_version = 99",
    "PRAGMA user_version = -1", "PRAGMA user_version = 0", "UPDATE studies SET spec_json = 'not json'",
    "UPDATE studies SET spec_json = '[]'", "UPDATE studies SET spec_json = NULL",
    "UPDATE studies SET name = NULL", "DELETE FROM _migrations", "ALTER TABLE sessions RENAME TO s2",
    "CREATE TABLE _migrations_x (a)", "UPDATE cases SET path = NULL", "DROP TABLE cases",
    "UPDATE studies SET spec_json = '{\"name\": 5}'",
]


def _pos(frac: float, n: int) -> int:
    return min(max(n - 1, 0), int(frac * n))


def bytes_op(data: bytes, op: tuple) -> bytes:
    """The byte-level mutations, for any file."""
    kind = op[0]
    n = len(data)
    if kind == "flip" and n:
        i = _pos(op[1], n)
        return data[:i] + bytes([data[i] ^ (1 << op[2])]) + data[i + 1:]
    if kind == "truncate":
        return data[:int(op[1] * n)]
    if kind == "insert":
        i = _pos(op[1], n + 1)
        return data[:i] + op[2] + data[i:]
    if kind == "delete":
        i = _pos(op[1], n)
        return data[:i] + data[i + op[2]:]
    if kind == "int" and n:
        i = _pos(op[1], n)
        fmt = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}[op[2]]
        v = op[3]
        lo, hi = -(1 << (8 * op[2] - 1)), (1 << (8 * op[2] - 1)) - 1
        v = ((v - lo) % (hi - lo + 1)) + lo
        return data[:i] + struct.pack(fmt, v) + data[i + op[2]:]
    return data


def _gz(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def nifti_field(data: bytes, name: str, value) -> bytes:
    zipped = _gz(data)
    raw = gzip.decompress(data) if zipped else data
    off, fmt = NIFTI_FIELDS[name]
    if fmt == "4s":
        value = value if isinstance(value, bytes) else b"xxxx"
    elif fmt in ("<h", "<i"):
        value = int(value) if isinstance(value, (int, float)) and value == value and abs(value) < 1e9 else 32767
        bits = 16 if fmt == "<h" else 32
        value = ((value + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))
    else:
        value = float(value) if isinstance(value, (int, float)) else 1.0
    raw = raw[:off] + struct.pack(fmt, value) + raw[off + struct.calcsize(fmt):]
    return gzip.compress(raw, mtime=0) if zipped else raw


def text_header_field(data: bytes, key: str, value: str, sep: str) -> bytes:
    """Set ``key`` in a MetaImage (``Key = v``) or NRRD (``key: v``) text header, adding it when absent."""
    end = data.find(b"ElementDataFile") if sep == " = " else data.find(b"\n\n")
    if end < 0:
        end = min(len(data), 2048)
    else:
        end = data.find(b"\n", end) + 1 if sep == " = " else end + 1
    head, body = data[:end], data[end:]
    line = f"{key}{sep}{value}\n".encode("latin-1")
    pattern = re.compile(rb"^" + re.escape(key.encode()) + rb"\s*[:=][^\n]*\n", re.M)
    if pattern.search(head):
        head = pattern.sub(lambda _m: line, head, count=1)
    elif sep == " = ":
        head = line + head
    else:
        first = head.find(b"\n") + 1
        head = head[:first] + line + head[first:]
    return head + body


def dicom_element(data: bytes, tag: tuple[int, int]) -> int:
    """Offset of an explicit-VR little-endian element header of ``tag`` (-1 if not found)."""
    return data.find(struct.pack("<HH", *tag))


def dicom_op(data: bytes, op: tuple) -> bytes:
    tag = DICOM_TAGS[op[1]]
    i = dicom_element(data, tag)
    if op[0] == "dcm_vr":
        if i < 0:
            return data
        return data[:i + 4] + op[2] + data[i + 6:]
    if op[0] == "dcm_len":
        if i < 0:
            return data
        vr = data[i + 4:i + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            return data[:i + 8] + struct.pack("<I", op[2] % (1 << 32)) + data[i + 12:]
        return data[:i + 6] + struct.pack("<H", op[2] % (1 << 16)) + data[i + 8:]
    if op[0] == "dcm_value":
        import io as _io

        import pydicom

        try:
            ds = pydicom.dcmread(_io.BytesIO(data), force=True)
            kw = op[1]
            if kw == "PixelData":
                ds.PixelData = op[2].encode()[:7] * 3
            elif kw == "TransferSyntaxUID":
                ds.file_meta.TransferSyntaxUID = op[2]
            elif kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                        "SamplesPerPixel"):
                v = int(float(op[2])) if re.fullmatch(r"-?\d+(\.\d+)?", op[2]) else 65535
                setattr(ds, kw, v % 65536)
            else:
                ds[tag] = pydicom.DataElement(tag, ds[tag].VR if tag in ds else "LO", op[2])
            buf = _io.BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            return buf.getvalue()
        except Exception:  # noqa: BLE001 - pydicom refusing a value: fall back to writing the text in place
            if i < 0:
                return data
            v = op[2].encode()
            return data[:i + 8] + v + data[i + 8 + len(v):]
    return data


def model_op(files: dict[str, bytes], op: tuple) -> dict[str, bytes]:
    files = dict(files)
    js_name = next(k for k in files if k.endswith(".json"))
    st_name = next(k for k in files if k.endswith(".safetensors"))
    if op[0] == "json_set":
        try:
            meta = json.loads(files[js_name])
        except ValueError:
            return files
        keys = op[1].split(".")
        node = meta
        for k in keys[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(k), dict):
                break
            node = node[k]
        else:
            if isinstance(node, dict):
                node[keys[-1]] = op[2]
        files[js_name] = json.dumps(meta).encode()
    elif op[0] == "st_header":
        data = files[st_name]
        n = int.from_bytes(data[:8], "little")
        try:
            header = json.loads(data[8:8 + n])
        except ValueError:
            return files
        names = sorted(k for k in header if k != "__metadata__")
        if not names:
            return files
        name = names[op[1] % len(names)]
        if op[2] == "drop":
            header.pop(name)
        elif op[2] == "__metadata__":
            header["__metadata__"] = op[3]
        elif op[2] == "header_len":
            v = op[3] if isinstance(op[3], int) else 2 ** 40
            files[st_name] = struct.pack("<Q", v % (1 << 64)) + data[8:]
            return files
        else:
            header[name][op[2]] = op[3]
        new = json.dumps(header).encode()
        files[st_name] = struct.pack("<Q", len(new)) + new + data[8 + n:]
    return files


def store_op(path: Path, op: tuple) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute(op[1])
        con.commit()
    except sqlite3.Error:
        pass
    finally:
        con.close()


def apply_plan(seed: Seed, plan: list[tuple], case_dir: Path) -> Path:
    """Copy ``seed`` into ``case_dir`` and apply the plan; returns the path to open."""
    if seed.path.is_dir():
        target = case_dir / seed.path.name
        shutil.copytree(seed.path, target)
    else:
        target = case_dir / seed.path.name
        shutil.copy(seed.path, target)
        if seed.target == "spec":  # its pools (real/, synthetic/) lie beside it
            for sub in ("real", "synthetic"):
                if (seed.path.parent / sub).exists():
                    os.symlink(seed.path.parent / sub, case_dir / sub)
    for op in plan:
        try:
            _apply_op(seed, target, op)
        except (OSError, ValueError, EOFError, KeyError, IndexError, struct.error, zlib.error):
            pass  # the op does not apply to what earlier ops left (e.g. a gzip field edit after a bit flip)
    return target


def _apply_op(seed: Seed, target: Path, op: tuple) -> None:
    """Apply one mutation to the staged copy of ``seed`` at ``target``."""
    if op[0] == "sql":
        store_op(target, op)
        return
    if seed.target == "model":
        files = {k: (target / k).read_bytes() for k in seed.extra}
        if op[0] in ("json_set", "st_header"):
            files = model_op(files, op)
        else:
            name = seed.extra[op[-1] % len(seed.extra)] if op[0] in ("flip", "truncate", "int") else seed.main
            files[name] = bytes_op(files[name], op[:-1] if op[0] in ("flip", "truncate", "int") else op)
        for k, v in files.items():
            (target / k).write_bytes(v)
        return
    f = target / seed.main if seed.main else target
    data = f.read_bytes()
    if op[0] == "nifti_field":
        data = nifti_field(data, op[1], op[2])
    elif op[0] == "mha_field":
        data = text_header_field(data, op[1], op[2], " = ")
    elif op[0] == "nrrd_field":
        data = text_header_field(data, op[1], op[2], ": ")
    elif op[0].startswith("dcm_"):
        data = dicom_op(data, op)
    elif op[0] == "toml_set":
        text = data.decode("utf-8", "replace")
        line = f"{op[1]} = {op[2]}"
        new, count = re.subn(rf"^{re.escape(op[1])}\s*=.*$", lambda _m: line, text, count=1, flags=re.M)
        data = (new if count else text + "\n" + line + "\n").encode()
    elif op[0] == "gz_inner" and _gz(data):
        data = gzip.compress(bytes_op(gzip.decompress(data), op[1]), mtime=0)
    else:
        data = bytes_op(data, op)
    f.write_bytes(data)


# ----------------------------------------------------------------------------------------------------------
# hypothesis strategies: one plan strategy per target


def plan_strategy(target: str):
    from hypothesis import strategies as st

    frac = st.floats(0.0, 1.0, allow_nan=False)
    generic = st.one_of(
        st.tuples(st.just("flip"), frac, st.integers(0, 7)),
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("insert"), frac, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), frac, st.integers(1, 256)),
        st.tuples(st.just("int"), frac, st.sampled_from([1, 2, 4, 8]), st.sampled_from(INTERESTING_INTS)),
    )
    if target == "nifti":
        special = st.one_of(
            st.tuples(st.just("nifti_field"), st.sampled_from(sorted(NIFTI_FIELDS)), st.sampled_from(NIFTI_VALUES)),
            st.tuples(st.just("gz_inner"), generic),
        )
    elif target == "mha":
        special = st.tuples(st.just("mha_field"), st.sampled_from(MHA_KEYS), st.sampled_from(HOSTILE_TEXT))
    elif target == "nrrd":
        special = st.one_of(
            st.tuples(st.just("nrrd_field"), st.sampled_from(NRRD_KEYS), st.sampled_from(HOSTILE_TEXT)),
            st.tuples(st.just("gz_inner"), generic),
        )
    elif target == "dicom":
        special = st.one_of(
            st.tuples(st.just("dcm_vr"), st.sampled_from(sorted(DICOM_TAGS)), st.sampled_from(DICOM_VRS)),
            st.tuples(st.just("dcm_len"), st.sampled_from(sorted(DICOM_TAGS)), st.sampled_from(INTERESTING_INTS)),
            st.tuples(st.just("dcm_value"), st.sampled_from(sorted(DICOM_TAGS)), st.sampled_from(DICOM_VALUES)),
        )
    elif target == "spec":
        keys = ["name", "kind", "seed", "pairs_per_reader", "cases_per_reader", "real", "synthetic", "mode",
                "window", "size", "depth", "[study]", "[pools]", "[display]"]
        vals = ['"x"', "5", "-1", "1e400", "[]", '["../*"]', '["/etc/*"]', "{}", '"continuity"', '"pair"',
                "true", "100000000000", '"\\u0000"', '"coronal"', "0", '[1, 2]', '"*"', '"real/*.nii.gz"']
        special = st.tuples(st.just("toml_set"), st.sampled_from(keys), st.sampled_from(vals))
    elif target == "store":
        special = st.tuples(st.just("sql"), st.sampled_from(STORE_SQL))
    elif target == "model":
        generic = st.one_of(
            st.tuples(st.just("flip"), frac, st.integers(0, 7), st.integers(0, 1)),
            st.tuples(st.just("truncate"), frac, st.integers(0, 1)),
            st.tuples(st.just("int"), frac, st.sampled_from([1, 2, 4, 8]), st.sampled_from(INTERESTING_INTS),
                      st.integers(0, 1)),
        )
        special = st.one_of(
            st.tuples(st.just("json_set"), st.sampled_from(MODEL_JSON_FIELDS), st.sampled_from(JSON_VALUES)),
            st.tuples(st.just("st_header"), st.integers(0, 50), st.sampled_from(ST_FIELDS),
                      st.sampled_from(ST_VALUES)),
        )
    else:
        raise ValueError(target)
    return st.lists(st.one_of(special, special, generic), min_size=1, max_size=3)


# ----------------------------------------------------------------------------------------------------------
# the worker: opens one input per request, answers one JSON line


def _check_volume(vol) -> str | None:
    import numpy as np

    from ctstudio.volume import Volume

    if not isinstance(vol, Volume):
        return f"read_volume returned {type(vol).__name__}"
    a = vol.array
    if a.ndim != 3 or a.dtype != np.int16 or 0 in a.shape:
        return f"invalid volume array {a.shape} {a.dtype}"
    sp = np.asarray(vol.spacing, dtype=float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or not np.all(sp > 0):
        return f"invalid spacing {vol.spacing}"
    return None


def open_input(target: str, path: str) -> str | None:
    """Open one input as a user's action would; returns a contract violation text, or None."""
    if target in ("nifti", "mha", "nrrd", "dicom"):
        from ctstudio.io import read_volume

        vol = read_volume(path, tilt="resample", spacing="resample")
        return _check_volume(vol)
    if target == "spec":
        from ctstudio.studies.spec import load_spec, resolve_pools

        spec = load_spec(path)
        resolve_pools(spec)
        return None
    if target == "store":
        from ctstudio.studies.store import Store

        st = Store(path)
        try:
            for s in st.studies():
                st.spec_of(s["id"])
                st.cases(s["id"])
        finally:
            st.close()
        return None
    if target == "model":
        from ctstudio import checkpoints
        from ctstudio.pipelines.models import clear_cache, load_model

        st_path = next(Path(path).glob("*.safetensors"), None) or Path(path) / "icnet-demo.safetensors"
        checkpoints.load_model(st_path)
        clear_cache()
        load_model(st_path, device="cpu")
        return None
    raise ValueError(target)


def worker_main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ctstudio.errors import CTStudioError

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints can break the protocol
    for line in sys.stdin:
        req = json.loads(line)
        t0 = time.perf_counter()
        try:
            bad = open_input(req["target"], req["path"])
            res = {"outcome": "ok"} if bad is None else {"outcome": "crash", "error": "InvalidResult",
                                                         "message": bad}
        except CTStudioError as exc:
            msg = str(exc)
            res = {"outcome": "error", "error": type(exc).__name__, "message": msg[:300]}
            if not msg.strip():
                res = {"outcome": "crash", "error": type(exc).__name__, "message": "(empty message)"}
        except BaseException as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            tb = traceback.format_exc(limit=-4)
            res = {"outcome": "crash", "error": type(exc).__name__, "message": str(exc)[:300], "traceback": tb}
        res["seconds"] = round(time.perf_counter() - t0, 3)
        out.write(json.dumps(res) + "\n")
        out.flush()


class Runner:
    """Feeds inputs to a worker process, one at a time, with a time limit; restarts it after a hang or death."""

    def __init__(self, time_limit_s: float = TIME_LIMIT_S):
        self.time_limit_s = time_limit_s
        self.proc: subprocess.Popen | None = None
        self.warm: set[str] = set()  # targets the current worker has imported the code of

    def _start(self) -> None:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "CTSTUDIO_MODELS": "/nonexistent"}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, text=True, bufsize=1)
        self.warm = set()

    def run(self, target: str, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        warmup = target not in self.warm
        self.warm.add(target)
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"target": target, "path": str(path)}) + "\n")
        self.proc.stdin.flush()
        # a fresh worker's first input of a target also pays for the imports (torch for the model loader)
        limit = self.time_limit_s + (60.0 if warmup else 0.0)
        ready, _, _ = select.select([self.proc.stdout], [], [], limit)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return {"outcome": "crash", "error": "Timeout", "message": f"no answer in {limit:.0f} s"}
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            self.proc = None
            sig = -rc if rc < 0 else None
            name = signal.Signals(sig).name if sig else f"exit {rc}"
            return {"outcome": "crash", "error": "WorkerDied", "message": f"the worker died ({name})"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Tally:
    tried: int = 0
    ok: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    crashes: list[dict] = field(default_factory=list)
    slowest_s: float = 0.0

    def add(self, seed: Seed, plan: list, res: dict) -> None:
        self.tried += 1
        self.slowest_s = max(self.slowest_s, float(res.get("seconds", 0.0)))
        if res["outcome"] == "ok":
            self.ok += 1
        elif res["outcome"] == "error":
            self.errors[f"{seed.target}:{res['error']}"] += 1
        else:
            self.crashes.append({"target": seed.target, "seed": seed.name, "plan": repr(plan), **res})


class Fuzzer:
    """Seeds + runner + tally: ``fuzz_one(seed, plan)`` writes the mutated input and opens it in the worker."""

    def __init__(self, folder: Path, runner: Runner | None = None):
        self.folder = Path(folder)
        self.seeds = build_seeds(self.folder / "seeds")
        self.runner = runner or Runner()
        self.tally = Tally()
        self._n = 0

    def seeds_for(self, target: str) -> list[Seed]:
        return [s for s in self.seeds if s.target == target]

    def fuzz_one(self, seed: Seed, plan: list) -> dict:
        self._n += 1
        case = self.folder / f"case{self._n}"
        case.mkdir()
        try:
            path = apply_plan(seed, plan, case)
            res = self.runner.run(seed.target, path)
        finally:
            shutil.rmtree(case, ignore_errors=True)
        self.tally.add(seed, plan, res)
        return res


def fuzz_target(fuzzer: Fuzzer, target: str, examples: int, seed: int | None) -> None:
    """Draw ``examples`` plans with hypothesis for one target and run each (every crash recorded, none raised)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    seeds = fuzzer.seeds_for(target)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(st.sampled_from(seeds), plan_strategy(target))
    def one(s, plan):
        fuzzer.fuzz_one(s, plan)

    if seed is not None:
        from hypothesis import seed as hseed

        one = hseed(seed)(one)
    one()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=3000, help="inputs in all (split over the targets)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (the same seed draws the same inputs)")
    ap.add_argument("--json", help="also write the tally (and every crash) to this JSON file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    targets = [t for t in args.targets.split(",") if t]
    per = max(1, args.examples // len(targets))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctstudio-fuzz-") as tmp:
        fz = Fuzzer(Path(tmp))
        try:
            rows = []
            for t in targets:
                before = (fz.tally.tried, fz.tally.ok, len(fz.tally.crashes))
                t1 = time.perf_counter()
                fuzz_target(fz, t, per, args.seed)
                rows.append((t, fz.tally.tried - before[0], fz.tally.ok - before[1],
                             len(fz.tally.crashes) - before[2], time.perf_counter() - t1))
        finally:
            fz.runner.close()
    tally = fz.tally
    print(f"{'target':8} {'inputs':>7} {'read ok':>8} {'crashes':>8} {'seconds':>8}")
    for t, n, ok, cr, s in rows:
        print(f"{t:8} {n:7d} {ok:8d} {cr:8d} {s:8.1f}")
    print(f"{'all':8} {tally.tried:7d} {tally.ok:8d} {len(tally.crashes):8d} {time.perf_counter() - t0:8.1f}")
    print(f"slowest input: {tally.slowest_s:.2f} s (limit {TIME_LIMIT_S:.0f} s); worker address space limit "
          f"{MEMORY_LIMIT_BYTES / 1024 ** 3:.0f} GiB")
    print("ctstudio errors by class:")
    for k, v in sorted(tally.errors.items()):
        print(f"  {k:40} {v}")
    print(f"crashes: {len(tally.crashes)}")
    by_kind = collections.Counter(f"{c['target']}:{c['error']}" for c in tally.crashes)
    for k, v in by_kind.most_common():
        example = next(c for c in tally.crashes if f"{c['target']}:{c['error']}" == k)
        print(f"  {k:40} {v}  e.g. {example['message'][:120]!r} plan={example['plan'][:160]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"tried": tally.tried, "ok": tally.ok, "errors": tally.errors,
                                               "crashes": tally.crashes}, indent=1, default=str))
    return 1 if tally.crashes else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Convert tab end to end on small crops: the phantom UB -> YA with the bundled kernel model (compare view,
reference metrics), cancel, the cGAN denoise path, the kernel/scanner warning and Save's refusals.
References: the arrays themselves, ctstudio.metrics.ssim on the same pair, files re-read with ctstudio.io."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ctstudio.volume import Metadata

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KERNEL_MODEL = "ggcl-phantom-ub-ya"
CGAN_MODEL = "cgan-chest-denoise"


@pytest.fixture(scope="module")
def phantom_pair(shared_data):
    """UB and YA crops of the Philips head phantom (same slices and grid): 4 x 96 x 96."""
    from ctstudio.io import read_volume

    d = shared_data / "head-phantom-philips-2kernels"
    out = {}
    for k, f in (("UB", "phantom_UB-std_slices24-55.nii.gz"), ("YA", "phantom_YA-bone_slices24-55.nii.gz")):
        v = read_volume(d / f)
        out[k] = v.with_array(np.ascontiguousarray(v.array[10:14, 200:296, 208:304]), step="test crop")
    return out


@pytest.fixture
def tab(qtbot, main_window):
    mw = main_window
    t = mw.tab("Convert")
    assert t is not None and type(t).__module__ == "ctstudio.app.tabs.convert"
    mw.tabs.setCurrentWidget(t)
    errors: list[tuple[str, str]] = []
    mw.show_error = lambda title, msg: errors.append((title, msg))
    t.errors = errors
    return t


def _run(qtbot, t, timeout=180000):
    worker = t.run()
    assert worker is not None, t.errors
    qtbot.waitUntil(lambda: t.worker is None, timeout=timeout)
    return worker


def _use(mw, volume, path=None, kernel=None):
    if kernel is not None:
        volume = volume.replace(metadata=dataclasses.replace(volume.metadata, kernel=kernel))
    mw.set_volume(volume, "phantom UB crop", path)


def test_kernel_conversion_compare_and_reference_metrics(qtbot, main_window, tab, phantom_pair):
    from ctstudio.metrics.ssim import psnr, psnr_ssim_per_slice, ssim

    mw, t = main_window, tab
    _use(mw, phantom_pair["UB"], kernel="UB")
    assert t.models.select(KERNEL_MODEL)
    assert t.target_combo.isVisible() and not t.overlap_spin.isVisible()
    assert t.target_combo.currentText() == "YA"  # the other kernel than the input's
    assert t.warnings() == []  # UB is one of the model's kernels
    t.set_reference(phantom_pair["YA"], "YA crop")
    events: list[dict] = []
    worker = t.run()
    worker.yielded.connect(events.append)
    qtbot.waitUntil(lambda: t.worker is None, timeout=180000)
    assert t.result is not None, t.errors
    assert any(ev["stage"] == "slice" and ev["total"] == 4 for ev in events)
    src, out = phantom_pair["UB"].array, t.result.volume.array
    assert t.result.volume.provenance.synthetic and t.result.target == "YA"
    # the compare view shows source | converted | source - converted
    c = t.compare
    np.testing.assert_array_equal(c.volume_a.array, src)
    np.testing.assert_array_equal(c.volume_b.array, out)
    np.testing.assert_array_equal(c.difference, src.astype(np.int32) - out.astype(np.int32))
    assert not np.array_equal(src, out)
    # the reference metrics are metrics.ssim's on the same pair (what `convert --reference` prints)
    ref = phantom_pair["YA"].array
    assert t.scores["output"]["psnr_db"] == pytest.approx(psnr(ref, out), abs=0.01)
    assert t.scores["output"]["ssim"] == pytest.approx(ssim(ref, out), abs=1e-4)
    assert t.scores["input"]["psnr_db"] == pytest.approx(psnr(ref, src), abs=0.01)
    assert f"{psnr(ref, out):.2f} dB" in t.metrics_label.text()
    per = psnr_ssim_per_slice(ref, out)
    curves = [i for i in t.psnr_plot.listDataItems() if i.name() == "converted"]
    assert len(curves) == 1
    np.testing.assert_allclose(curves[0].yData, per["psnr_db"], atol=1e-6)
    # a click on the per-slice plot (here: its method) moves the compare view to that slice
    t.show_slice(2)
    assert c.view_a.display.original_index(c.state.cursor)[0] == 2
    assert t.slice_lines[0].value() == 2


def test_cancel_keeps_nothing(qtbot, main_window, tab, phantom_pair, tmp_path):
    mw, t = main_window, tab
    big = phantom_pair["UB"]
    big = big.with_array(np.ascontiguousarray(np.repeat(big.array, 6, axis=0)))  # 24 slices: 6 batches
    _use(mw, big, kernel="UB")
    assert t.models.select(KERNEL_MODEL)
    seen: list[dict] = []

    def first_batch(ev):
        seen.append(ev)
        if ev["stage"] == "slice" and ev["done"] < ev["total"]:
            t.cancel()

    worker = t.run()
    worker.yielded.connect(first_batch)
    qtbot.waitUntil(lambda: t.worker is None, timeout=180000)
    slices = [ev for ev in seen if ev["stage"] == "slice"]
    assert slices and slices[-1]["done"] < 24  # stopped within a batch of the cancel
    assert t.result is None and not t.save_button.isEnabled()
    assert t.progress_label.text().startswith("cancelled")
    out = tmp_path / "half.nii.gz"  # a cancelled run leaves nothing that Save could write, not even half
    assert t.save(out) is None and not out.exists() and not list(tmp_path.glob("half*"))
    assert not t.errors


def test_cgan_denoise_path(qtbot, main_window, tab, shared_data):
    from ctstudio.io import read_volume

    mw, t = main_window, tab
    v = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz")
    crop = v.with_array(np.ascontiguousarray(v.array[20:52, 200:264, 200:264]), step="test crop")
    _use(mw, crop)
    assert t.models.select(CGAN_MODEL)
    assert t.overlap_spin.isVisible() and not t.target_combo.isVisible()
    assert "denoise" in t.task_label.text()
    t.degrade_check.setChecked(True)
    t.overlap_spin.setValue(8)
    events: list[dict] = []
    worker = t.run()
    worker.yielded.connect(events.append)
    qtbot.waitUntil(lambda: t.worker is None, timeout=300000)
    assert t.result is not None and t.result.kind == "cgan", t.errors
    blocks = [ev for ev in events if ev["stage"] == "block"]
    assert blocks and blocks[-1]["done"] == blocks[-1]["total"] and all(ev["unit"] == "block" for ev in blocks)
    # the source shown is the degraded input; denoising brings it closer to the clean crop
    assert not np.array_equal(t.compare.volume_a.array, crop.array)
    clean = crop.array.astype(float)
    err_in = np.abs(t.result.input.array - clean).mean()
    err_out = np.abs(t.result.volume.array - clean).mean()
    assert err_out < err_in
    assert "degraded" in t.compare.view_a.title


def test_warns_when_the_model_was_not_trained_on_this_kernel_or_scanner(main_window, tab, phantom_pair):
    mw, t = main_window, tab
    siemens = phantom_pair["UB"].replace(metadata=Metadata(kernel="B30f", manufacturer="SIEMENS",
                                                           manufacturer_model="Sensation 64"))
    mw.set_volume(siemens, "chest")
    assert t.models.select(KERNEL_MODEL)
    text = t.warning_label.text()
    assert "B30f" in text and "UB, YA" in text and "Philips" in text and "SIEMENS" in text
    mw.set_volume(phantom_pair["UB"], "no header")  # a NIfTI: no kernel to check
    assert "unknown" in t.warning_label.text()


def test_save_refuses_the_source_and_asks_before_overwriting(qtbot, main_window, tab, phantom_pair, tmp_path):
    from ctstudio.io import read_volume, write_volume

    mw, t = main_window, tab
    src_path = tmp_path / "source.nii.gz"
    write_volume(phantom_pair["UB"], src_path)
    _use(mw, read_volume(src_path), path=str(src_path), kernel="UB")
    assert t.models.select(KERNEL_MODEL)
    _run(qtbot, t)
    assert t.result is not None and t.save_button.isEnabled()
    before = src_path.read_bytes()
    # onto the source: refused, even when the user would confirm
    t.confirm_overwrite = lambda path: True
    assert t.save(src_path) is None
    assert t.errors and "overwrite an input" in t.errors[-1][1]
    assert src_path.read_bytes() == before
    # over another existing file: asked; "no" keeps the file
    other = tmp_path / "other.nii.gz"
    other.write_bytes(b"keep me")
    asked: list = []
    t.confirm_overwrite = lambda path: asked.append(path) or False
    assert t.save(other) is None
    assert asked == [other] and other.read_bytes() == b"keep me"
    # a new file: written, with its provenance beside it
    new = tmp_path / "converted.nii.gz"
    worker = t.save(new)
    qtbot.waitUntil(lambda: (tmp_path / "converted.provenance.json").exists(), timeout=60000)
    assert worker is not None
    np.testing.assert_array_equal(read_volume(new).array, t.result.volume.array)
    side = json.loads((tmp_path / "converted.provenance.json").read_text())
    assert side["synthetic"] is True and side["provenance"]["model"] == KERNEL_MODEL


def _block_event(done, total, starts, block):
    return {"job": "convert", "stage": "block", "done": done, "total": total, "unit": "block", "seconds": 0.1,
            "eta": 1.0, "blocks": starts, "block": block}


def test_running_conversion_outlines_its_finished_part_a_few_times_a_second(qtbot, main_window, tab, phantom_pair):
    """While a run goes, the compare view shows the input with the finished blocks (or slices) outlined; a
    stream of events redraws it at most LIVE_HZ times a second. Reference: the union of the reported boxes,
    built here by hand."""
    from ctstudio.app.tabs.convert import LIVE_HZ

    mw, t = main_window, tab
    vol = phantom_pair["UB"]  # 4 x 96 x 96
    _use(mw, vol, kernel="UB")
    t._start_live(vol)
    np.testing.assert_array_equal(t.compare.volume_b.array, vol.array)  # the input, until the result comes
    starts = [(0, y, x) for y in (0, 32, 64) for x in (0, 32, 64)]
    for i, s in enumerate(starts[:5]):  # five batches of one block, faster than a redraw
        t._progress(_block_event(i + 1, 9, [s], 32))
    assert t.region_redraws == 0  # nothing drawn per event
    qtbot.waitUntil(lambda: t.region_redraws == 1, timeout=2000)
    expect = np.zeros(vol.shape, bool)
    for z, y, x in starts[:5]:
        expect[z:z + 32, y:y + 32, x:x + 32] = True  # z: the crop has 4 slices, the block covers them all
    np.testing.assert_array_equal(t.done_mask, expect)
    rgba = t.compare.region_image("B")
    assert rgba is not None and rgba.shape[:2] == (96, 96)
    assert int((rgba[..., 3] > 0).sum()) == 5 * 32 * 32  # tinted exactly where the finished blocks are
    assert int((rgba[..., 3] == 255).sum()) > 0  # with an outline
    # a steady stream: 40 events over about a second give at most LIVE_HZ redraws a second (+1)
    import time

    t0, before = time.perf_counter(), t.region_redraws
    for i in range(40):
        t._progress(_block_event(5, 9, [starts[i % 9]], 32))
        qtbot.wait(25)
    elapsed = time.perf_counter() - t0
    qtbot.wait(int(1000 / LIVE_HZ) + 50)
    redraws = t.region_redraws - before
    assert 1 <= redraws <= LIVE_HZ * (elapsed + 0.3) + 1, (redraws, elapsed)
    assert t.done_mask.all()
    # a kernel model's slice events mark whole slices
    t._start_live(vol)
    t._progress({"job": "convert", "stage": "slice", "done": 2, "total": 4, "unit": "slice", "seconds": 0.1,
                 "eta": 0.1, "first": 0})
    assert t.done_mask[:2].all() and not t.done_mask[2:].any()
    t._stop_live()
    assert t.compare.region_image("B") is None


def test_real_run_outline_gives_way_to_the_result(qtbot, main_window, tab, phantom_pair):
    mw, t = main_window, tab
    _use(mw, phantom_pair["UB"], kernel="UB")
    assert t.models.select(KERNEL_MODEL)
    _run(qtbot, t)
    assert t.result is not None, t.errors
    assert t.done_mask.all()  # every slice was reported finished
    assert t.compare.region_image("B") is None  # the outline is gone, the converted volume is shown
    np.testing.assert_array_equal(t.compare.volume_b.array, t.result.volume.array)


def test_tab_metrics_equal_the_convert_command(qtbot, main_window, tab, phantom_pair, tmp_path, capsys):
    """`ctstudio convert --reference` (the real command, in-process) prints the PSNR / SSIM the tab shows."""
    import re

    from ctstudio.cli import main
    from ctstudio.io import read_volume, write_volume

    ub, ya = tmp_path / "ub.nii.gz", tmp_path / "ya.nii.gz"
    write_volume(phantom_pair["UB"], ub)
    write_volume(phantom_pair["YA"], ya)
    mw, t = main_window, tab
    _use(mw, read_volume(ub), path=str(ub))
    assert t.models.select(KERNEL_MODEL)
    t.target_combo.setCurrentText("YA")
    t.set_reference(read_volume(ya), "ya.nii.gz", str(ya))
    _run(qtbot, t)
    assert t.result is not None and t.scores is not None, t.errors
    capsys.readouterr()
    assert main(["convert", str(ub), "--model", KERNEL_MODEL, "--target", "YA", "--reference", str(ya),
                 "-o", str(tmp_path / "cli.nii.gz"), "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    cli = {label: (float(p), float(s)) for label, p, s in
           re.findall(r"(input|output) vs reference: PSNR ([-\d.]+) dB\s+SSIM ([-\d.]+)", out)}
    assert set(cli) == {"input", "output"}, out
    for label, key in (("output", "output"), ("input", "input")):
        assert abs(t.scores[key]["psnr_db"] - cli[label][0]) <= 0.01
        assert abs(t.scores[key]["ssim"] - cli[label][1]) <= 1e-4
    # and the tab's label shows those numbers
    assert f"PSNR {cli['output'][0]:.2f} dB" in t.metrics_label.text()


def test_save_as_dicom_is_marked_synthetic(qtbot, main_window, tab, phantom_pair, tmp_path):
    import pydicom

    mw, t = main_window, tab
    _use(mw, phantom_pair["UB"], kernel="UB")
    assert t.models.select(KERNEL_MODEL)
    _run(qtbot, t)
    assert t.result is not None, t.errors
    out = tmp_path / "converted_dicom"
    worker = t.save(out, "dicom")
    assert worker is not None
    qtbot.waitUntil(lambda: t.progress_label.text().startswith("saved"), timeout=60000)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == 4, files
    for f in files:
        ds = pydicom.dcmread(f)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.SyntheticData == "YES"
    from ctstudio.io import read_volume

    np.testing.assert_array_equal(read_volume(out).array, t.result.volume.array)  # the converted values

"""The report files: JSON of every number (inf/NaN made explicit), HTML that shows each plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.metrics import report
from ctstudio.metrics.suite import DEFAULT_METRICS, parse_metrics, parse_range


def test_parse_metrics_and_ranges():
    assert parse_metrics(None) == (DEFAULT_METRICS, False)
    assert parse_metrics("FID, ms-ssim,bmmd2") == (("fid", "msssim", "mmd"), True)
    assert "icnet" in parse_metrics("all")[0]
    with pytest.raises(InputError, match="unknown metric"):
        parse_metrics("fid,lpips")
    r = parse_range("-10,70")
    assert (r.lower, r.upper, r.width) == (-10, 70, 80)
    assert parse_range("12-bit").width == 4095
    with pytest.raises(InputError, match="HU range"):
        parse_range("brainy")


def test_json_keeps_every_number_and_spells_out_inf_and_nan(tmp_path):
    doc = {"metrics": {"psnr": {"mean": float("inf"), "x": np.float32(0.5), "nan": float("nan"),
                                "arr": np.zeros(3), "list": [np.int64(2), 1.5]}}}
    p = report.write_json(doc, tmp_path / "m.json")
    back = json.loads(p.read_text())["metrics"]["psnr"]
    assert back == {"mean": "inf", "x": 0.5, "nan": None, "list": [2, 1.5]}
    assert (p.stat().st_mode & 0o777) & 0o044  # readable by others (not a private temp file)


def test_html_shows_plots_numbers_and_errors(tmp_path):
    png = report.plot_fid({"12-bit": {"axial": 3.0, "coronal": 4.0}}, tmp_path / "plots" / "fid.png")
    doc = {"inputs": {"real": [{"path": "a<b>.nii.gz"}]},
           "metrics": {"fid": {"fid": {"12-bit": {"axial": 3.0, "coronal": 4.0}}},
                       "psnr": {"error": "PSNR/SSIM compare pairs"}}}
    page = report.write_html(doc, {"fid": png}, tmp_path / "report.html").read_text()
    assert "src='plots/fid.png'" in page
    assert "a&lt;b&gt;.nii.gz" in page  # escaped
    assert "not computed: PSNR/SSIM compare pairs" in page
    assert "fid / 12-bit / coronal" in page and ">4<" in page

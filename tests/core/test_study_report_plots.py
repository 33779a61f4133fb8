"""The report's plots for small studies: no matplotlib warning, a KDE plot that shows every reader even when a
density cannot be drawn, continuity bars on the 1..3 scale."""

import warnings

import numpy as np
import pytest

from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.report import write_study_report
from ctstudio.studies.session import ReaderSession
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import Store


def _pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(int)


@pytest.mark.parametrize("survey", [None, {"radiologist": True}])
def test_one_reader_pair_report_has_no_warning_and_a_non_empty_kde(tmp_path, survey):
    spec = load_spec(write_phantom_study(tmp_path / "p", trials=4))
    with Store(tmp_path / "p.db") as st:
        s = ReaderSession.open(st, spec, "R1", survey=survey, prefetch=False)
        s.begin()
        while s.current is not None:
            s.answer(choice="left")
        rows = st.responses_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (matplotlib's empty legend) fails the test
        res = write_study_report(rows, tmp_path / "out", spec=spec)
    img = _pixels(tmp_path / "out" / "kde_by_group.png")
    # the reader's tick is drawn in a group colour (blue #4477aa or olive #999933), not only axes and a legend
    blue = (np.abs(img - [0x44, 0x77, 0xAA]).sum(axis=2) < 40).sum()
    olive = (np.abs(img - [0x99, 0x99, 0x33]).sum(axis=2) < 40).sum()
    assert blue + olive > 30
    assert "kde_by_group.png" in res["files"]


def test_continuity_bars_start_at_the_lowest_score(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    spec = load_spec(write_phantom_study(tmp_path / "c", kind="continuity", trials=2, mode="volume",
                                         extra="[continuity]\nstructures = ['a']\n"))
    with Store(tmp_path / "c.db") as st:
        s = ReaderSession.open(st, spec, "R1", prefetch=False)
        s.begin()
        while s.current is not None:
            s.answer(scores={"a": 1})  # every score at the bottom of the scale: no bar at all
        rows = st.responses_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_study_report(rows, tmp_path / "out", spec=spec)
    img = _pixels(tmp_path / "out" / "continuity.png")
    # no bar drawn: a score of 1 is the start of the axis; in the old plot (bars from 0) these were full bars
    red = (np.abs(img - [0xCC, 0x66, 0x77]).sum(axis=2) < 40).sum()
    blue = (np.abs(img - [0x44, 0x77, 0xAA]).sum(axis=2) < 40).sum()
    assert red < 400 and blue < 400  # the legend patches only

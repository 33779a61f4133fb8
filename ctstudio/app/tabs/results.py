"""The Results tab: a study database's statistics, tables and plots.

Choose a study database and press Analyze (or Enter in the path field):
:func:`ctstudio.studies.report.write_report` (the same code as ``ctstudio study analyze``) runs off the UI
thread and writes its CSV tables, plots and summary into the output folder you give, or, when none is
given, into a temporary folder (nothing is written beside the database); the tab shows the summary, the
per-reader (or per-structure) table and the plots.

Results are for the study owner, never for readers: after a reader session ran in this window (and while
the chosen database has unfinished sessions) the tab is locked and shows nothing until the owner unlocks it
explicitly (:meth:`Tab.unlock`, the "Unlock results (study owner)..." button, with a confirmation). During
a session the window's reader lock makes the tab unreachable.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QScrollArea, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

TITLE = "Results"
ORDER = 60


def _analyze_job(db_path: str, out_dir: str, *, cancel=None):
    from ctstudio.jobs import Progress, check_cancel
    from ctstudio.studies.report import write_report
    from ctstudio.studies.store import Store

    yield Progress("analyze", total=1, unit="database").event("start", db=db_path)
    check_cancel(cancel, f"{db_path} not analysed")
    with Store(db_path) as store:
        return write_report(store, out_dir)


def cell_text(v) -> str:
    """A table cell: a missing value (an unanswered survey question, a test not computable) is "-", never
    "None" or "nan"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Tab(QWidget):
    """The Results tab (see module doc)."""

    #: the analysis finished: the list of per-study result dicts
    analyzed = Signal(list)
    failed = Signal(str)

    def __init__(self, main_window=None) -> None:
        super().__init__()
        self.main_window = main_window
        self.results: list[dict] = []
        self.worker = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Study database"))
        self.db_edit = QLineEdit()
        self.db_edit.returnPressed.connect(self.analyze)
        row.addWidget(self.db_edit, 1)
        b = QPushButton("Browse...")
        b.clicked.connect(self._browse)
        row.addWidget(b)
        row.addWidget(QLabel("Output folder"))
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("default: a temporary folder (nothing written beside the database)")
        self.out_edit.returnPressed.connect(self.analyze)
        row.addWidget(self.out_edit, 1)
        self.analyze_button = QPushButton("Analyze")
        self.analyze_button.clicked.connect(self.analyze)
        row.addWidget(self.analyze_button)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Study"))
        self.study_box = QComboBox()
        self.study_box.currentIndexChanged.connect(self._show_study)
        row2.addWidget(self.study_box, 1)
        self.status_label = QLabel("")
        row2.addWidget(self.status_label, 2)
        lay.addLayout(row2)
        lock_row = QHBoxLayout()
        self.lock_label = QLabel("")
        self.lock_label.setWordWrap(True)
        self.lock_label.setStyleSheet("color: #8a5a00;")
        lock_row.addWidget(self.lock_label, 1)
        self.unlock_button = QPushButton("Unlock results (study owner)...")
        self.unlock_button.clicked.connect(lambda: self.unlock(confirm=True))
        lock_row.addWidget(self.unlock_button)
        lay.addLayout(lock_row)
        self.locked_reason: str | None = None
        self._owner_unlocked_db: str | None = None
        self._temp_out: str | None = None
        split = QSplitter(Qt.Orientation.Vertical)
        top = QSplitter(Qt.Orientation.Horizontal)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.Monospace)
        self.summary.setFont(f)
        top.addWidget(self.summary)
        self.table = QTableWidget()
        top.addWidget(self.table)
        split.addWidget(top)
        self.plots_host = QWidget()
        self.plots_layout = QHBoxLayout(self.plots_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(False)  # plots keep their size; a scroll bar instead of a cut-off plot
        scroll.setWidget(self.plots_host)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        scroll.setMinimumHeight(360)
        lay.addWidget(split, 1)
        self.plot_labels: list[QLabel] = []
        self.plots_scroll = scroll
        self._show_lock()
        settings = getattr(main_window, "settings", None)
        if settings is not None:
            self.db_edit.setText(str(settings.value("study/last_db", "") or ""))

    def on_activated(self) -> None:
        settings = getattr(self.main_window, "settings", None)
        if settings is not None and not self.db_edit.text().strip():
            self.db_edit.setText(str(settings.value("study/last_db", "") or ""))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Study database", "", "SQLite (*.db);;All files (*)")
        if path:
            self.db_edit.setText(path)

    # -- the owner lock -----------------------------------------------------------------------
    def lock(self, reason: str) -> None:
        """Hide every result until the study owner unlocks the tab (after a reader session, or while the
        database has unfinished sessions)."""
        self.locked_reason = reason
        self._owner_unlocked_db = None
        self.results = []
        self.summary.clear()
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self._clear_plots()
        self.study_box.clear()
        self._show_lock()

    def unlock(self, confirm: bool = True) -> bool:
        """The study owner's explicit unlock; with ``confirm`` a dialog asks first. Returns whether unlocked."""
        if self.locked_reason is None:
            return True
        if confirm:
            from PySide6.QtWidgets import QMessageBox

            ans = QMessageBox.question(self, "Show study results?",
                                       f"{self.locked_reason}\n\nResults must never be shown to a reader. Unlock "
                                       "them now, as the study owner?")
            if ans != QMessageBox.StandardButton.Yes:
                return False
        self.locked_reason = None
        # the database chosen now (or, none chosen, any) stays open to the owner until the next reader session
        self._owner_unlocked_db = self.db_edit.text().strip() or "*"
        self._show_lock()
        return True

    def _show_lock(self) -> None:
        locked = self.locked_reason is not None
        self.lock_label.setText(f"Results locked: {self.locked_reason}" if locked else "")
        self.lock_label.setVisible(locked)
        self.unlock_button.setVisible(locked)

    def _unfinished_sessions(self, db: str) -> int:
        from ctstudio.studies.store import Store

        try:
            with Store(db, create=False) as st:
                return int(st.conn.execute("SELECT COUNT(*) FROM sessions WHERE state != 'finished'").fetchone()[0])
        except Exception:  # noqa: BLE001 - the analysis itself reports a bad database
            return 0

    def out_dir(self) -> str:
        out = self.out_edit.text().strip()
        if out:
            return out
        if self._temp_out is None:
            self._temp_out = tempfile.mkdtemp(prefix="ctstudio-results-")
        return self._temp_out

    def analyze(self):
        from ctstudio.app.workers import start_worker

        db = self.db_edit.text().strip()
        if not db or not Path(db).is_file():
            self._fail(f"{db or '(none)'}: no such study database; choose the .db file a study wrote")
            return None
        if self.locked_reason is None and self._owner_unlocked_db not in (db, "*"):
            n_open = self._unfinished_sessions(db)
            if n_open:
                self.lock(f"{n_open} session(s) of this database are unfinished (a reader may still be working)")
        if self.locked_reason is not None:
            self.status_label.setText("locked: the study owner must unlock the results first")
            return None
        self.analyze_button.setEnabled(False)
        self.status_label.setText("analysing...")
        self.worker = start_worker(_analyze_job, db, self.out_dir(), kind="analyze", on_result=self._done, on_error=self._error,
                                   on_finished=lambda: self.analyze_button.setEnabled(True))
        return self.worker

    def _error(self, exc: BaseException) -> None:
        self._fail(str(exc))

    def _fail(self, message: str) -> None:
        self.status_label.setText("analysis failed")
        if self.main_window is not None and hasattr(self.main_window, "show_error"):
            self.main_window.show_error("Analysis failed", message)
        self.failed.emit(message)

    def _done(self, results: list) -> None:
        self.results = results
        self.study_box.blockSignals(True)
        self.study_box.clear()
        for r in results:
            self.study_box.addItem(f"{r.get('study')} ({r.get('kind')})")
        self.study_box.blockSignals(False)
        self._show_study(0)
        self.status_label.setText(f"wrote {sum(len(r['files']) for r in results)} files to {self.out_dir()}")
        self.analyzed.emit(results)

    def _show_study(self, i: int) -> None:
        if not 0 <= i < len(self.results):
            return
        r = self.results[i]
        self.summary.setPlainText(r.get("text", ""))
        df = r.get("per_reader") if r.get("kind") == "pair" else r.get("continuity")
        self.table.clear()
        if df is not None:
            cols = [c for c in df.columns if c not in ("study",)]
            self.table.setColumnCount(len(cols))
            self.table.setRowCount(len(df))
            self.table.setHorizontalHeaderLabels(cols)
            for row, (_, rec) in enumerate(df.iterrows()):
                for col, c in enumerate(cols):
                    text = cell_text(rec[c])
                    self.table.setItem(row, col, QTableWidgetItem(text))
            self.table.resizeColumnsToContents()
        self._clear_plots()
        for f in r.get("files", []):
            if f.endswith(".png"):
                lab = QLabel()
                pm = QPixmap(str(Path(r["out_dir"]) / f))
                lab.setPixmap(pm.scaledToHeight(320, Qt.TransformationMode.SmoothTransformation))
                lab.setToolTip(f)
                self.plots_layout.addWidget(lab)
                lab.show()  # shown now (not at the next event loop turn), so the host's size counts it
                self.plot_labels.append(lab)
        self.plots_layout.activate()
        self.plots_host.resize(self.plots_host.sizeHint())  # as large as its plots: the area scrolls, none is cut

    def _clear_plots(self) -> None:
        for lab in self.plot_labels:
            self.plots_layout.removeWidget(lab)
            lab.deleteLater()
        self.plot_labels = []

    def shutdown(self) -> None:
        if self.worker is not None:
            try:
                self.worker.quit()
            except RuntimeError:
                pass

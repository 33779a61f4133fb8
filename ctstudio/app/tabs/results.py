"""The Results tab: a study database's statistics, tables and plots.

Choose a study database and press Analyze: :func:`ctstudio.studies.report.write_report` (the same
code as ``ctstudio study analyze``) runs off the UI thread and writes its CSV tables, plots and
summary into an output folder (default: ``<db name>_results`` beside the database); the tab shows
the summary, the per-reader (or per-structure) table and the plots.
"""

from __future__ import annotations

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
        row.addWidget(self.db_edit, 1)
        b = QPushButton("Browse...")
        b.clicked.connect(self._browse)
        row.addWidget(b)
        row.addWidget(QLabel("Output folder"))
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("default: <database>_results")
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
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.plots_host)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        scroll.setMinimumHeight(360)
        lay.addWidget(split, 1)
        self.plot_labels: list[QLabel] = []
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

    def out_dir(self) -> str:
        out = self.out_edit.text().strip()
        if out:
            return out
        db = Path(self.db_edit.text().strip())
        return str(db.with_name(db.stem + "_results"))

    def analyze(self):
        from ctstudio.app.workers import start_worker

        db = self.db_edit.text().strip()
        if not db or not Path(db).is_file():
            self._fail(f"{db or '(none)'}: no such study database; choose the .db file a study wrote")
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
                    v = rec[c]
                    text = f"{v:.4g}" if isinstance(v, float) else str(v)
                    self.table.setItem(row, col, QTableWidgetItem(text))
            self.table.resizeColumnsToContents()
        for lab in self.plot_labels:
            lab.deleteLater()
        self.plot_labels = []
        for f in r.get("files", []):
            if f.endswith(".png"):
                lab = QLabel()
                pm = QPixmap(str(Path(r["out_dir"]) / f))
                lab.setPixmap(pm.scaledToHeight(320, Qt.TransformationMode.SmoothTransformation))
                lab.setToolTip(f)
                self.plots_layout.addWidget(lab)
                self.plot_labels.append(lab)

    def shutdown(self) -> None:
        if self.worker is not None:
            try:
                self.worker.quit()
            except RuntimeError:
                pass

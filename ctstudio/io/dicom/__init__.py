"""DICOM: read a CT series (or a single file) into a HU :class:`~ctstudio.volume.Volume`; write a Volume
as a CT series. One module per job, in the order a read goes:

- :mod:`~ctstudio.io.dicom.fields`: the one map of the header fields the reader uses;
- :mod:`~ctstudio.io.dicom.walker`: a fast byte walker over ordinary Part 10 headers;
- :mod:`~ctstudio.io.dicom.header`: the header of one file (walker or pydicom) and its checks;
- :mod:`~ctstudio.io.dicom.series`: scanning a folder, grouping and choosing a series;
- :mod:`~ctstudio.io.dicom.geometry`: slice order, gantry tilt, spacing, gaps, duplicates;
- :mod:`~ctstudio.io.dicom.pixels`: decoding and rescaling the pixels to int16 HU;
- :mod:`~ctstudio.io.dicom.reader`: the whole read, with the reading policy (:mod:`ctstudio.io.policy`);
- :mod:`~ctstudio.io.dicom.writer`: writing a series.
"""

from ctstudio.io.dicom.reader import build_volume, inspect_dicom, read_dicom
from ctstudio.io.dicom.series import list_series, scan_folder
from ctstudio.io.dicom.writer import CT_IMAGE_STORAGE, write_dicom_series

__all__ = ["CT_IMAGE_STORAGE", "build_volume", "inspect_dicom", "list_series", "read_dicom", "scan_folder",
           "write_dicom_series"]

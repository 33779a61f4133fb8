"""Reading and writing CT volumes. Everything leaves here as a :class:`~ctstudio.volume.Volume` in HU.

``read_volume(path)`` dispatches on what the path is (a DICOM folder or file, NIfTI, MHA, NRRD);
``write_volume(volume, path)`` on the extension or ``format=`` (``"dicom"`` writes a series folder).
``inspect_path(path)`` is what ``ctstudio info`` prints; ``list_series(folder)`` lists the DICOM
series in a folder. ``ReadPolicy`` / ``tilt=`` and ``spacing=`` say how a series with gantry tilt or
irregular slice spacing is read (:mod:`ctstudio.io.policy`). Errors are :mod:`ctstudio.errors` classes.
"""

from ctstudio.io.api import DICOM_SUFFIXES, VOLUME_SUFFIXES, inspect_path, is_volume_file, read_volume, write_volume
from ctstudio.io.policy import CHOICES as POLICY_CHOICES
from ctstudio.io.policy import ReadPolicy


def list_series(folder) -> list[dict]:
    """The DICOM series under ``folder`` (UID, modality, description, number of files), largest first."""
    from ctstudio.io.dicom import list_series as list_dicom_series

    return list_dicom_series(folder)


__all__ = ["DICOM_SUFFIXES", "POLICY_CHOICES", "ReadPolicy", "VOLUME_SUFFIXES", "inspect_path", "is_volume_file",
           "list_series", "read_volume", "write_volume"]

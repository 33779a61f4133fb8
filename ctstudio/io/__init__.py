"""Reading and writing CT volumes. Everything leaves here as a :class:`~ctstudio.volume.Volume` in HU.

``read_volume(path)`` dispatches on what the path is (a DICOM folder or file, NIfTI, MHA, NRRD);
``write_volume(volume, path)`` on the extension. Errors are :mod:`ctstudio.errors` classes.
"""

from ctstudio.io.api import read_volume, write_volume

__all__ = ["read_volume", "write_volume"]

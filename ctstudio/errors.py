"""The ctstudio exception hierarchy.

Every error a user can cause is a :class:`CTStudioError` whose message names the file (or
input), says what is wrong and what to do. The CLI prints the message and exits non-zero;
the app shows it in a dialog and keeps running. Raw library tracebacks never reach a user.
"""

from __future__ import annotations

from pathlib import Path


class CTStudioError(Exception):
    """Base class of every error ctstudio raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.hint = hint
        text = message
        if self.path is not None and self.path not in message:
            text = f"{self.path}: {message}"
        if hint:
            text = f"{text}\n  -> {hint}"
        super().__init__(text)
        self.message = text


class InputError(CTStudioError):
    """Something the user gave (a file, a folder, an argument) cannot be used."""


class VolumeReadError(InputError):
    """A file or folder could not be read as a CT volume."""


class NotAnImageError(VolumeReadError):
    """The file is not DICOM / NIfTI / MHA / NRRD (or is empty, or truncated)."""


class SeriesError(VolumeReadError):
    """A DICOM series is inconsistent: mixed sizes, duplicate or missing slices, several series."""


class GeometryError(VolumeReadError):
    """Gantry tilt or non-uniform spacing that the caller asked to be reported, not resampled."""


class VolumeWriteError(CTStudioError):
    """A volume could not be written."""


class ValueRangeError(InputError):
    """Values outside what a CT volume can hold (NaN, Inf, beyond int16 or the 12-bit range)."""


class ConfigError(InputError):
    """A configuration, study spec or model card is invalid."""


class ModelError(CTStudioError):
    """A model file is missing, malformed or does not match what was asked of it."""


class Cancelled(CTStudioError):
    """Long work stopped because the user cancelled it."""

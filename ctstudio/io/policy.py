"""The reading policy: what to do with a series whose slices are not a regular grid.

Two questions, asked the same way by the window and by every command that reads volumes:

- ``tilt``: the slices were acquired with a gantry tilt (the stack advances obliquely to the slices);
- ``spacing``: the slice spacing varies, or slices are missing from an otherwise regular stack.

Each takes one of three answers:

- ``"resample"``: resample onto a regular axial grid (recommended; recorded in the provenance);
- ``"as-acquired"``: keep the acquired slices unchanged and stack them on a regular grid (tilt: along the
  slice normal, the in-plane shift between slices ignored; spacing: at the median step); the geometry is
  then approximate, which the provenance says;
- ``"error"``: refuse, with a message saying what is wrong and how to open it anyway.

Duplicate slice positions are always an error (no honest volume can be built from them). NIfTI, MHA
and NRRD files hold a regular grid by construction, so the policy never changes how they read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctstudio.errors import InputError

RESAMPLE = "resample"
AS_ACQUIRED = "as-acquired"
ERROR = "error"
#: the answers to each question, in the order a dialog offers them
CHOICES = (RESAMPLE, AS_ACQUIRED, ERROR)
#: older spellings still accepted from Python callers ("report" meant "error")
_OLD_SPELLINGS = {"report": ERROR, "as_acquired": AS_ACQUIRED, "asacquired": AS_ACQUIRED}


def parse_choice(value, question: str) -> str:
    """``value`` as one of :data:`CHOICES` (case-insensitive); an :class:`InputError` for anything else."""
    text = str(value).strip().lower() if isinstance(value, str) else value
    text = _OLD_SPELLINGS.get(text, text)
    if text not in CHOICES:
        raise InputError(f"the {question} policy must be one of {', '.join(CHOICES)}, not {value!r}",
                         hint=f"{RESAMPLE}: resample onto a regular grid (recommended); {AS_ACQUIRED}: keep the "
                              f"slices as acquired (geometry approximate); {ERROR}: refuse such a series")
    return text


@dataclass(frozen=True)
class ReadPolicy:
    """How to read a series with gantry tilt or irregular slice spacing (see the module doc)."""

    tilt: str = ERROR
    spacing: str = ERROR

    def __post_init__(self) -> None:
        object.__setattr__(self, "tilt", parse_choice(self.tilt, "gantry tilt"))
        object.__setattr__(self, "spacing", parse_choice(self.spacing, "slice spacing"))

    @classmethod
    def resample(cls) -> "ReadPolicy":
        """Resample both onto a regular axial grid (the recommended choice of the window's dialog)."""
        return cls(RESAMPLE, RESAMPLE)

    @classmethod
    def as_acquired(cls) -> "ReadPolicy":
        """Keep the slices as acquired (geometry approximate)."""
        return cls(AS_ACQUIRED, AS_ACQUIRED)

    def to_dict(self) -> dict[str, str]:
        return {"tilt": self.tilt, "spacing": self.spacing}


def how_to_open(question: str) -> str:
    """The hint of an ``"error"`` refusal: how the user can open the series anyway, in words.

    ``question`` is ``"tilt"`` or ``"spacing"`` (the names of the command-line options).
    """
    return (f"open it resampled onto a regular axial grid (recommended; command line: --{question} resample, "
            f"or --resample; in the window: 'resample onto a regular axial grid'), or keep the slices as "
            f"acquired with approximate geometry (--{question} as-acquired)")

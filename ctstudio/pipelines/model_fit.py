"""Was a model trained on data like this volume? Warnings from the model card and the volume's DICOM header.

:func:`input_warnings` compares the input's reconstruction kernel and scanner (``volume.metadata``, read from
the DICOM header; empty for NIfTI / MHA / NRRD) with what the model was trained on: a kernel model's kernels
(its domains), and the scanner maker named by the card (``card["manufacturer"]`` / ``card["scanner"]``), else
inferred from the naming scheme of its kernels, else found in the card's text. It returns sentences for a
person; an empty list means nothing to warn about. It never refuses: the user decides.
"""

from __future__ import annotations

import json
import re

from ctstudio.volume import Metadata

#: kernel naming schemes of the main CT makers (a kernel name says who made the scanner)
_KERNEL_SCHEMES = (
    ("Siemens", re.compile(r"^[A-Z][a-z]?\d{2}[a-z]?(\\\d)?$|^[A-Z][a-z]\d{2}[a-z]?")),  # B30f, Br40d, I30f, Hr38
    ("Canon (Toshiba)", re.compile(r"^FC\d{1,2}$", re.I)),  # FC01 ... FC86
    ("GE", re.compile(r"^(STANDARD|SOFT|BONE|BONEPLUS|LUNG|DETAIL|CHEST|EDGE|ULTRA|HD ?STANDARD|BONE ?PLUS)$", re.I)),
    ("Philips", re.compile(r"^[A-Z]{1,2}$")),  # A, B, C, D, UB, YA, YB, EB, ...
)
_MAKERS = {"siemens": "Siemens", "philips": "Philips", "ge ": "GE", "general electric": "GE", "toshiba": "Canon (Toshiba)",
           "canon": "Canon (Toshiba)", "united imaging": "United Imaging"}


def kernel_maker(kernel: str) -> str | None:
    """The scanner maker whose naming scheme ``kernel`` follows ("Siemens" for B30f, "Philips" for UB), or None."""
    k = (kernel or "").strip()
    for maker, pattern in _KERNEL_SCHEMES:
        if k and pattern.match(k):
            return maker
    return None


def _maker_named(text: str) -> str | None:
    low = f" {text.lower()} "
    for needle, maker in _MAKERS.items():
        if needle in low:
            return maker
    return None


def trained_maker(meta: dict) -> tuple[str | None, str]:
    """(maker, how we know) of the scanner the model's training data came from; (None, "") when unknown."""
    card = meta.get("card", {}) if isinstance(meta.get("card"), dict) else {}
    for key in ("manufacturer", "scanner"):
        if card.get(key):
            maker = _maker_named(str(card[key])) or str(card[key])
            return maker, f"its card names {card[key]}"
    domains = trained_kernels(meta)
    makers = {kernel_maker(d) for d in domains}
    if domains and len(makers) == 1 and None not in makers:
        maker = makers.pop()
        return maker, f"its kernels {', '.join(domains)} are {maker} kernel names"
    maker = _maker_named(json.dumps(card))
    if maker:
        return maker, "its card names it"
    return None, ""


def trained_kernels(meta: dict) -> list[str]:
    """The reconstruction kernels a kernel-conversion model knows (its domains); [] for other models."""
    cfg = meta.get("config", {}) if isinstance(meta.get("config"), dict) else {}
    card = meta.get("card", {}) if isinstance(meta.get("card"), dict) else {}
    return [str(d) for d in (cfg.get("domains") or card.get("domains") or [])]


def input_warnings(meta: dict, metadata: Metadata, kind: str | None = None) -> list[str]:
    """Sentences warning that the model (its JSON ``meta``: kind, config, card) was not trained on this input."""
    kind = kind or str(meta.get("kind", ""))
    name = str(meta.get("name", "the model"))
    out: list[str] = []
    kernel = (metadata.kernel or "").strip()
    kernels = trained_kernels(meta)
    if kind == "ggcl" and kernels:
        if not kernel:
            out.append(f"The input's reconstruction kernel is unknown (no DICOM header); {name} was trained on "
                       f"kernels {', '.join(kernels)} only: check that the input is one of them.")
        elif kernel.lower() not in {k.lower() for k in kernels}:
            out.append(f"{name} was trained on kernels {', '.join(kernels)}, not on this input's kernel {kernel}: "
                       "its output is outside what it learned.")
    maker, how = trained_maker(meta)
    input_maker = _maker_named(metadata.manufacturer) if metadata.manufacturer else None
    if input_maker is None and kernel:
        input_maker = kernel_maker(kernel)
    if maker and input_maker and maker != input_maker:
        scanner = " ".join(x for x in (metadata.manufacturer, metadata.manufacturer_model) if x) or \
            f"a {input_maker} scanner (kernel {kernel})"
        out.append(f"{name} was trained on {maker} CT ({how}); this input comes from {scanner}.")
    return out

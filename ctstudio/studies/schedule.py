"""Seeded scheduling and blinding.

* Case IDs shown anywhere a reader (or a script reading the database) could see them are opaque
  random tokens (:func:`new_token`); the token -> file map lives only in the ``cases`` table.
* Each reader's order is drawn from a generator seeded by the study seed and the reader's code
  (:func:`reader_seed`), so re-creating a schedule gives the same order, and a resumed session
  continues it (the trials are also stored when a session starts).
* Pair studies: ``n`` (real, synthetic) pairs; the real image's side is random per pair and
  logged; no pair occurs twice in one session, and no image appears in two consecutive pairs when the
  pools allow it (:func:`spread`). ``with_replacement`` draws each case independently
  (Korkinof et al.); ``balanced`` uses every case once before any repeats.
* Continuity studies: ``n`` single cases, half real and half synthetic (balanced), shuffled; the same case
  never twice in a row when the pools allow it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import numpy as np

from ctstudio.errors import ConfigError


def new_token() -> str:
    """An opaque case token: 10 random hex digits, with no relation to the file or its class."""
    return "c" + secrets.token_hex(5)


def reader_seed(study_seed: int, reader_code: str) -> int:
    h = hashlib.sha256(f"{study_seed}:{reader_code}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)  # fits a signed SQLite INTEGER


@dataclass(frozen=True)
class Trial:
    """One scheduled trial. Pair: ``left``/``right`` tokens and ``real_side``. Continuity: ``case``/``cls``."""

    index: int  # question index, 1-based
    kind: str
    left: str | None = None
    right: str | None = None
    real_side: str | None = None
    case: str | None = None
    cls: str | None = None

    @property
    def real(self) -> str | None:
        if self.kind != "pair":
            return None
        return self.left if self.real_side == "left" else self.right

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.left, self.right) if self.kind == "pair" else (self.case,)


def _draw(rng: np.random.Generator, pool: list[str], n: int, sampling: str) -> list[str]:
    if sampling == "with_replacement":
        return [pool[i] for i in rng.integers(0, len(pool), size=n)]
    out: list[str] = []
    while len(out) < n:
        out.extend(pool[i] for i in rng.permutation(len(pool)))
    return out[:n]


def spread(items: list, rng: np.random.Generator, key=lambda it: tuple(it), tries: int = 200) -> list:
    """Reorder ``items`` so that no two consecutive items share a case (``key(item)`` gives its cases): the
    same image is never shown in two trials in a row. Seeded randomised greedy passes (take any item that
    shares no case with the previous one) until one has no repeat; when the pools make that impossible (a
    case drawn in more than half the trials), the order with the fewest repeats."""
    def one_pass() -> tuple[int, list]:
        rest = list(items)
        out: list = []
        clashes = 0
        while rest:
            prev = set(key(out[-1])) if out else set()
            ok = [i for i, it in enumerate(rest) if not (set(key(it)) & prev)]
            if not ok:
                clashes += 1
                ok = list(range(len(rest)))
            out.append(rest.pop(ok[int(rng.integers(len(ok)))]))
        return clashes, out

    best = None
    for _ in range(tries):
        clashes, order = one_pass()
        if best is None or clashes < best[0]:
            best = (clashes, order)
        if clashes == 0:
            break
    return best[1] if best else []


def make_schedule(kind: str, real: list[str], synthetic: list[str], n: int, seed: int,
                  sampling: str = "with_replacement") -> list[Trial]:
    """The trials of one session (see module doc). ``real``/``synthetic`` are case tokens."""
    if not real or not synthetic:
        raise ConfigError("a study needs at least one real and one synthetic case")
    real, synthetic = sorted(real), sorted(synthetic)  # order independent of the insertion order
    rng = np.random.default_rng(seed)
    if kind == "pair":
        if n > len(real) * len(synthetic):
            raise ConfigError(f"pairs_per_reader = {n} but only {len(real)} x {len(synthetic)} distinct "
                              "(real, synthetic) pairs exist; no pair may occur twice in a session",
                              hint="lower study.pairs_per_reader or add cases")
        reals = _draw(rng, real, n, sampling)
        synths = _draw(rng, synthetic, n, sampling)
        seen: set[tuple[str, str]] = set()
        pairs: list[tuple[str, str]] = []
        for r, s in zip(reals, synths):
            tries = 0
            while (r, s) in seen:  # redraw a repeated pair (rare; the pool check above bounds it)
                tries += 1
                r = real[int(rng.integers(len(real)))] if tries % 2 else r
                s = synthetic[int(rng.integers(len(synthetic)))]
            seen.add((r, s))
            pairs.append((r, s))
        pairs = spread(pairs, rng)
        sides = rng.integers(0, 2, size=n)
        trials = []
        for i, ((r, s), side) in enumerate(zip(pairs, sides)):
            if side == 0:
                trials.append(Trial(i + 1, "pair", left=r, right=s, real_side="left"))
            else:
                trials.append(Trial(i + 1, "pair", left=s, right=r, real_side="right"))
        return trials
    if kind == "continuity":
        n_real = (n + int(rng.integers(0, 2))) // 2 if n % 2 else n // 2
        n_syn = n - n_real
        # balanced sampling cycles through a pool smaller than the draw: repeats only after every case was used
        items = [("real", t) for t in _draw(rng, real, n_real, sampling)]
        items += [("synthetic", t) for t in _draw(rng, synthetic, n_syn, sampling)]
        items = spread([items[j] for j in rng.permutation(len(items))], rng, key=lambda it: (it[1],))
        return [Trial(i + 1, "continuity", case=c, cls=cls) for i, (cls, c) in enumerate(items)]
    raise ConfigError(f"unknown study kind {kind!r}")

"""Seeded per-reader order, side randomisation, balance, no repeated pair, opaque tokens."""

from collections import Counter

import pytest

from ctstudio.errors import ConfigError
from ctstudio.studies.schedule import make_schedule, new_token, reader_seed

REAL = [f"r{i}" for i in range(5)]
SYN = [f"s{i}" for i in range(5)]


def test_same_reader_same_order_other_reader_other_order():
    a = make_schedule("pair", REAL, SYN, 10, reader_seed(1, "alice"))
    again = make_schedule("pair", list(reversed(REAL)), SYN, 10, reader_seed(1, "alice"))
    b = make_schedule("pair", REAL, SYN, 10, reader_seed(1, "bob"))
    assert a == again  # independent of the pool's listing order
    assert a != b
    assert make_schedule("pair", REAL, SYN, 10, reader_seed(2, "alice")) != a


def test_pairs_hold_one_real_one_synthetic_no_pair_twice_sides_random():
    sides = Counter()
    for r in range(200):
        trials = make_schedule("pair", REAL[:2], SYN[:3], 6, reader_seed(3, f"r{r}"))
        assert [t.index for t in trials] == list(range(1, 7))
        pairs = [(t.real, (set(t.tokens) - {t.real}).pop()) for t in trials]
        assert len(set(pairs)) == 6  # 2 x 3 = 6 distinct pairs, all used once
        for t in trials:
            assert t.real in REAL and set(t.tokens) - {t.real} <= set(SYN)
            sides[t.real_side] += 1
    assert 0.45 < sides["left"] / sum(sides.values()) < 0.55


def test_more_pairs_than_distinct_pairs_is_refused():
    with pytest.raises(ConfigError, match="no pair may occur twice"):
        make_schedule("pair", REAL[:2], SYN[:2], 5, 0)


def test_balanced_sampling_uses_every_case_before_repeating():
    trials = make_schedule("pair", REAL, SYN, 10, 42, sampling="balanced")
    reals = Counter(t.real for t in trials)
    assert set(reals) == set(REAL) and set(reals.values()) == {2}


def test_continuity_is_balanced_real_and_synthetic():
    for seed in range(20):
        trials = make_schedule("continuity", REAL, SYN, 10, seed)
        assert Counter(t.cls for t in trials) == {"real": 5, "synthetic": 5}
        assert all((t.case in REAL) == (t.cls == "real") for t in trials)
    odd = make_schedule("continuity", REAL, SYN, 7, 1)
    assert abs(sum(t.cls == "real" for t in odd) - sum(t.cls == "synthetic" for t in odd)) == 1


def test_tokens_are_opaque_and_unique():
    toks = {new_token() for _ in range(1000)}
    assert len(toks) == 1000
    assert all(len(t) == 11 and t[0] == "c" and all(ch in "0123456789abcdef" for ch in t[1:]) for t in toks)


def test_no_image_appears_in_consecutive_trials_when_the_pools_allow_it():
    real = [f"r{i}" for i in range(4)]
    fake = [f"s{i}" for i in range(4)]
    for seed in range(30):
        for sampling in ("with_replacement", "balanced"):
            trials = make_schedule("pair", real, fake, 10, seed, sampling)
            assert len({(t.real, t.left if t.real == t.right else t.right) for t in trials}) == 10
            if max(Counter(tok for t in trials for tok in t.tokens).values()) > 4:
                continue  # drawn with replacement so often that no order can avoid a repeat
            for a, b in zip(trials, trials[1:]):
                assert not set(a.tokens) & set(b.tokens), (seed, sampling, a, b)
            cont = make_schedule("continuity", real, fake, 8, seed, sampling)
            for a, b in zip(cont, cont[1:]):
                assert a.case != b.case, (seed, sampling)

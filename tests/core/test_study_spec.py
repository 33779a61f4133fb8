"""Study specs: a valid TOML parses; every malformed one gives a ConfigError naming the field."""

from pathlib import Path

import pytest

from ctstudio.errors import ConfigError, InputError
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.spec import DEFAULT_STRUCTURES, load_spec, parse_spec, resolve_pools

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "study": {"name": "s", "kind": "pair", "seed": 1},
    "pools": {"real": ["r/*.nii.gz"], "synthetic": ["s/*.nii.gz"]},
}


def _with(section, key, value):
    d = {k: dict(v) for k, v in BASE.items()}
    d.setdefault(section, {})[key] = value
    return d


def test_defaults_follow_the_papers():
    spec = parse_spec(BASE)
    assert spec.pairs_per_reader == 10  # Korkinof et al.
    assert spec.sampling == "with_replacement"
    assert spec.structures == DEFAULT_STRUCTURES and len(spec.structures) == 8  # Jeong et al.
    assert spec.scale == ("discontinuity", "strained continuity", "well-preserved continuity")
    assert spec.display.window == (0.0, 80.0) and spec.display.window_locked  # brain 40/80


@pytest.mark.parametrize("data, field", [
    ({"pools": BASE["pools"]}, "study"),
    (_with("study", "kind", "triple"), "study.kind"),
    (_with("study", "seed", "abc"), "study.seed"),
    (_with("study", "pairs_per_reader", 0), "study.pairs_per_reader"),
    (_with("study", "pairs_per_reader", True), "study.pairs_per_reader"),
    (_with("study", "sampling", "sometimes"), "study.sampling"),
    (_with("study", "colour", "red"), "study.colour"),
    (_with("pools", "real", []), "pools.real"),
    (_with("pools", "synthetic", [3]), "pools.synthetic"),
    (_with("display", "mode", "4d"), "display.mode"),
    (_with("display", "window", "rainbow"), "display.window"),
    (_with("display", "window", [100, 0]), "display.window"),
    (_with("display", "slice", 1.5), "display.slice"),
    (_with("display", "allowed_windows", ["brain", "nope"]), "display.allowed_windows"),
    (_with("continuity", "scale", ["only one"]), "continuity.scale"),
    (_with("continuity", "structures", ["a", "a"]), "continuity.structures"),
])
def test_malformed_spec_names_the_field(data, field):
    with pytest.raises(ConfigError) as exc:
        parse_spec(data, path="bad.toml")
    assert f"'{field}'" in str(exc.value) and "bad.toml" in str(exc.value)


def test_missing_seed_and_name_are_reported():
    d = {"study": {"kind": "pair", "seed": 1}, "pools": BASE["pools"]}
    with pytest.raises(ConfigError, match="study.name"):
        parse_spec(d)
    d = {"study": {"kind": "pair", "name": "x"}, "pools": BASE["pools"]}
    with pytest.raises(ConfigError, match="study.seed"):
        parse_spec(d)


def test_toml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 'x'")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="no such study spec"):
        load_spec(tmp_path / "nope.toml")


def test_pools_resolve_relative_to_the_spec_with_exclusions(tmp_path):
    spec_path = write_phantom_study(tmp_path, n_real=3, n_synthetic=2,
                                    extra="")
    text = spec_path.read_text().replace('seed = 7', 'seed = 7\nexclude = ["real/case01.nii.gz"]')
    spec_path.write_text(text)
    cases = resolve_pools(load_spec(spec_path))
    reals = [c.path for c in cases if c.cls == "real"]
    assert len(reals) == 2 and not any("case01" in p for p in reals)
    assert sum(c.cls == "synthetic" for c in cases) == 2


def test_missing_case_file_is_a_clear_error(tmp_path):
    spec_path = write_phantom_study(tmp_path, n_real=1, n_synthetic=1)
    spec_path.write_text(spec_path.read_text().replace('real = ["real/*.nii.gz"]',
                                                       'real = ["real/case00.nii.gz", "real/missing.nii.gz"]'))
    with pytest.raises(InputError) as exc:
        resolve_pools(load_spec(spec_path))
    assert "missing.nii.gz" in str(exc.value) and "does not exist" in str(exc.value)


def test_a_glob_matching_nothing_and_a_case_in_both_pools(tmp_path):
    spec_path = write_phantom_study(tmp_path, n_real=1, n_synthetic=1)
    spec_path.write_text(spec_path.read_text().replace('synthetic = ["synthetic/*.nii.gz"]',
                                                       'synthetic = ["fakes/*.nii.gz"]'))
    with pytest.raises(ConfigError, match="pools.synthetic.*matches no file"):
        resolve_pools(load_spec(spec_path))
    spec_path.write_text(spec_path.read_text().replace('synthetic = ["fakes/*.nii.gz"]',
                                                       'synthetic = ["real/*.nii.gz"]'))
    with pytest.raises(ConfigError, match="both the real and the synthetic pool"):
        resolve_pools(load_spec(spec_path))


def test_bundled_templates_are_valid():
    templates = sorted((ROOT / "resources" / "studies").glob("*.toml"))
    assert {t.name for t in templates} >= {"headsq_pair_demo.toml", "headsq_continuity_demo.toml"}
    kinds = {load_spec(t).kind for t in templates}
    assert kinds == {"pair", "continuity"}
    for t in templates:
        # the demo's synthetic pool is labelled honestly: output of the bundled demo model
        assert "OUTPUT OF THE BUNDLED DEMO MODEL" in " ".join(t.read_text().replace("#", " ").split())

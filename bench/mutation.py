"""Mutation check: do the tests of a module notice when its code is changed a little?

    .venv/bin/python bench/mutation.py [--module window|ssim|analysis ...] [--fraction F] [--all]
        [--seed 0] [--timeout 120] [--rev REV] [--sites-from REV] [--rerun-survivors BEFORE.json]
        [--only KEY ...] [--json OUT.json] [--list] [-q]

A small hand-rolled runner (mutmut 3 wants to own the tree's layout and rewrites every module it
mutates; this one touches nothing in the working tree). For each module it

1. copies ``ctstudio/``, ``tests/`` and ``pyproject.toml`` into a temporary folder (``resources/``
   is linked), so other work in the tree is never disturbed;
2. lists the mutants of the module: one AST change each (operator swaps ``+ -``, ``* /``, ``< <=``,
   ``== !=``, ``and or``; a number ``n -> n + 1``; ``True <-> False``; a keyword string changed
   (``"two-sided" -> "greater"``, others get ``XX..XX``); a keyword argument dropped; a side-effect
   call statement deleted; ``clip``/``rint``/``round``/``abs``/``sorted`` calls replaced by their first
   argument; ``.lower <-> .upper``, ``min <-> max``; a unary minus or ``not`` dropped). Docstrings,
   annotations and the text of raised errors are not mutated. The issue's four named mutants
   (:data:`NAMED`) are always run, on top of a stable sample of the others (by a hash of the mutated
   line's text and the change, so the same code gives the same sample in another revision);
3. runs the module's own test files (``pytest -x -q``) once per mutant in a forked child of a
   process that has already imported the heavy libraries (numpy, scipy, pandas, torch, ...), so a
   mutant costs the tests' own time. A mutant is *killed* when the tests fail or time out,
   *survives* when they pass.

Score = killed / run. The unmutated module must pass first (else the run stops).

Figures (issue 11, "Tests and figures"), measured 2026-12-01 on the shared 2-core CPU, seed 0, default
sample (window: all 66 generic mutants; ssim and analysis: the stable 30 % hash sample, 45 of 169 and
82 of 303) plus the four named mutants:

    module                 BEFORE (--rev 30a68a2)   AFTER (same mutants)   AFTER, equivalents left out
    imaging/window.py      58/68  85 %              65/68  96 %            65/65  100 %
    metrics/ssim.py        35/46  76 %              43/46  93 %            43/43  100 %
    studies/analysis.py    48/83  58 %              74/81  91 %            74/74  100 %
    named (a)-(d)          3 of 4 survived          all 4 killed

    new code in metrics/ssim.py (psnr_ssim_per_slice and helpers): 11/11 sampled mutants killed.

    .venv/bin/python bench/mutation.py --rev 30a68a2 --json before.json   # BEFORE (module + tests then)
    .venv/bin/python bench/mutation.py --rerun-survivors before.json       # AFTER: BEFORE's survivors again
    .venv/bin/python bench/mutation.py --sites-from 30a68a2                # AFTER in full, same code only

AFTER re-ran BEFORE's survivors (the tests were only added to, so a mutant killed then is killed now);
for analysis.py 2 of BEFORE's 35 survivors sit on code another engineer has since rewritten (left out:
81, not 83). A full AFTER run of window.py agreed on the 22 mutants it reached before it was stopped for time. (c), the
half-HU edge shift as written in :data:`NAMED`, was already killed by the old uint8 test at 40 HU; the
new tests pin both outputs at the exact edges and one HU inside.

The surviving mutants that are equivalent (no behaviour a caller can see) are listed in
:data:`EQUIVALENT`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module key -> (source path, the test files that pin it)
MODULES: dict[str, tuple[str, list[str]]] = {
    "window": ("ctstudio/imaging/window.py", ["tests/core/test_window_intensity.py"]),
    "ssim": ("ctstudio/metrics/ssim.py", ["tests/core/test_metrics_ssim.py"]),
    "analysis": ("ctstudio/studies/analysis.py", ["tests/core/test_study_analysis.py"]),
}
#: default share of the generic mutants run per module (a stable sample: see :func:`_in_sample`)
FRACTION = {"window": 1.0, "ssim": 0.3, "analysis": 0.3}

#: The four surviving mutants named in issue 11, as exact source edits (old, new, description).
NAMED: dict[str, list[tuple[str, str, str]]] = {
    "window": [
        ("    np.clip(x, 0.0, 1.0, out=x)\n    if np.dtype(out_dtype) == np.uint8:\n"
         "        return np.rint(x * 255.0).astype(np.uint8)\n",
         "    if np.dtype(out_dtype) == np.uint8:\n        np.clip(x, 0.0, 1.0, out=x)\n"
         "        return np.rint(x * 255.0).astype(np.uint8)\n",
         "named (b): float window output not clipped"),
        ("lo, width = window.lower, window.width", "lo, width = window.lower + 0.5, window.width",
         "named (c): window edge shifted by half a HU"),
    ],
    "ssim": [
        ("return np.clip(np.asarray(x, dtype=np.float64), rng.lower, rng.upper)",
         "return np.clip(np.asarray(x, dtype=np.float64), FULL_12BIT.lower, FULL_12BIT.upper)",
         "named (d): PSNR/SSIM inputs clipped to the 12-bit range instead of the stated one"),
    ],
    "analysis": [
        ('out["p_binom_two_sided"] = [binom_p_two_sided(', 'out["p_binom_two_sided"] = [binom_p_greater(',
         "named (a): two-sided binomial column filled with the one-sided p"),
    ],
}

#: Surviving mutants with no behaviour a caller can see: (module, code on the line, change) -> why.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("window", "return x.astype(out_dtype, copy=False)", "drop keyword copy= of astype()"):
        "x is a fresh array: a copy changes nothing",
    ("window", "return x.astype(out_dtype, copy=False)", "constant False -> True"):
        "x is a fresh array: a copy changes nothing",
    ("window", "x = (np.asarray(hu, dtype=np.float32)", "drop keyword dtype= of asarray()"):
        "the subtraction promotes integer HU to float anyway; only the precision of the intermediate "
        "changes (float64 for int64 input), no grey level",
    ("ssim", 'return ndimage.gaussian_filter(img, sigma, truncate=truncate, mode="reflect")',
     "drop keyword mode= of gaussian_filter()"): "'reflect' is scipy's default mode",
    ("ssim", "if max_pairs is not None and len(pairs) > max_pairs:", "compare[0] Gt -> GtE"):
        "drawing all N pairs without replacement and sorting them gives all N pairs in order",
    ("ssim", "pairs = [pairs[i] for i in sorted(pick)]", "call sorted(x, ...) -> x"):
        "the mean and SD over pairs do not depend on their order",
    ("ssim", "seed: int = 0,", "constant 0 -> 1"):
        "the default seed of the pair sample: a different, equally valid sample (callers pass the seed)",
    ("analysis", "n_mc: int = 20000, seed: int = 0", "constant 0 -> 1"):
        "the default seed of the Monte-Carlo draws: another, equally valid sample (analyze passes its seed)",
    ("analysis", "return round(float(x.std(ddof=1)), 10)", "drop keyword ddof= of std()"):
        "x is a pandas Series, whose std() has ddof=1 by default",
    ("analysis", '"pooled_expected": [round(float(e), 4) for e in exp_p]', "constant 4 -> 5"):
        "display precision of the reported pooled expected counts",
    ("analysis", "return round(float(x.std(ddof=1)), 10)", "constant 10 -> 11"):
        "identical rates still give exactly 0; only digits beyond display change",
    ("analysis", 'u, p = mannwhitneyu(a, b, alternative="two-sided")', "drop keyword alternative= of mannwhitneyu()"):
        "two-sided is scipy's default",
    ("analysis", 'u, p = mannwhitneyu(real, fake, alternative="two-sided")',
     "drop keyword alternative= of mannwhitneyu()"): "two-sided is scipy's default",
    ("analysis", 'out["mc_p_value"] = float((1 + np.count_nonzero(sim_stats >= stat_full - 1e-12))',
     "compare[0] GtE -> Gt"): "the 1e-12 tolerance already counts ties",
    ("analysis", "def agreement(long_df, n_categories: int = 3)", "constant 3 -> 4"):
        "an unused fourth category changes neither Cohen's nor Fleiss' kappa for scores 1..3",
    ("analysis", '"expected": [round(float(e), 4) for e in expected]', "constant 4 -> 5"):
        "display precision of the reported expected counts",
}

#: Libraries imported once by the parent so that each forked child starts warm.
WARM_IMPORTS = ("numpy", "scipy.stats", "scipy.ndimage", "pandas", "torch", "skimage.metrics", "sklearn.metrics",
                "statsmodels.stats.inter_rater", "scikit_posthocs", "pytorch_msssim", "SimpleITK", "nibabel",
                "pytest")

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.FloorDiv: ast.Div, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
STRING_SWAP = {"two-sided": "greater", "greater": "two-sided", "less": "greater", "holm": "bonferroni",
               "reflect": "constant", "fleiss": "randolph", "median": "mean", "first": "last"}
NAME_SWAP = {"lower": "upper", "upper": "lower", "min": "max", "max": "min", "argmax": "argmin",
             "argmin": "argmax", "floor": "ceil", "ceil": "floor"}
DROP_CALLS = {"clip", "rint", "round", "abs", "sorted"}


@dataclass
class Mutant:
    key: str            # "<module>:<n>" for generic (n: order in the file), "<module>:named<i>" for named
    line: int
    description: str
    site: str = ""      # the mutated line's text + the change: the same for the same code in another revision
    source: str = field(repr=False, default="")
    status: str = ""    # killed / survived / timeout
    seconds: float = 0.0


# -- listing mutants -------------------------------------------------------------------------------------
def _skip_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes that are never mutated: docstrings, annotations, raise statements, f-strings."""
    skip: set[int] = set()

    def mark(node):
        for n in ast.walk(node):
            skip.add(id(n))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                mark(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    mark(a.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, (ast.Raise, ast.JoinedStr, ast.Import, ast.ImportFrom)):
            mark(node)
    return skip


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _variants(node: ast.AST, parent: ast.AST | None) -> list[str]:
    """Names of the mutations possible at ``node`` (each applied by :func:`_apply`)."""
    out = []
    if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
        out.append(f"binop {type(node.op).__name__} -> {BINOP_SWAP[type(node.op)].__name__}")
    elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP_SWAP:
        out.append(f"augassign {type(node.op).__name__} -> {BINOP_SWAP[type(node.op)].__name__}")
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                out.append(f"compare[{i}] {type(op).__name__} -> {CMP_SWAP[type(op)].__name__}")
    elif isinstance(node, ast.BoolOp):
        out.append("boolop " + ("and -> or" if isinstance(node.op, ast.And) else "or -> and"))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        out.append(f"drop unary {type(node.op).__name__}")
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            out.append(f"constant {v} -> {not v}")
        elif isinstance(v, (int, float)):
            out.append(f"constant {v!r} -> {v + 1!r}")
        elif isinstance(v, str) and isinstance(parent, (ast.keyword, ast.Compare)):
            out.append(f"string {v!r} -> {STRING_SWAP.get(v, 'XX' + v + 'XX')!r}")
    elif isinstance(node, ast.Call):
        for i, kw in enumerate(node.keywords):
            if kw.arg is not None:
                out.append(f"drop keyword {kw.arg}= of {_call_name(node)}()")
        if _call_name(node) in DROP_CALLS and node.args:
            out.append(f"call {_call_name(node)}(x, ...) -> x")
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(f"delete statement {_call_name(node.value)}(...)")
    elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAP:
        out.append(f"attribute .{node.attr} -> .{NAME_SWAP[node.attr]}")
    elif isinstance(node, ast.Name) and node.id in ("min", "max"):
        out.append(f"name {node.id} -> {NAME_SWAP[node.id]}")
    return out


def _sites(tree: ast.AST) -> list[tuple[int, int, str, int]]:
    """(node index in walk order, variant index, description, line) for every mutation site."""
    skip = _skip_nodes(tree)
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    sites = []
    for idx, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for v, desc in enumerate(_variants(node, parents.get(id(node)))):
            sites.append((idx, v, desc, getattr(node, "lineno", 0)))
    return sites


def _replace_child(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise RuntimeError("child not found")


def _apply(source: str, node_index: int, variant: int) -> str:
    """The source with one mutation applied (on a fresh parse)."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    node = nodes[node_index]
    parents = {id(c): p for p in nodes for c in ast.iter_child_nodes(p)}
    parent = parents.get(id(node))
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = BINOP_SWAP[type(node.op)]()
    elif isinstance(node, ast.Compare):
        i = [k for k, op in enumerate(node.ops) if type(op) in CMP_SWAP][variant]
        node.ops[i] = CMP_SWAP[type(node.ops[i])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        _replace_child(parent, node, node.operand)
    elif isinstance(node, ast.Constant):
        v = node.value
        node.value = (not v) if isinstance(v, bool) else v + 1 if isinstance(v, (int, float)) \
            else STRING_SWAP.get(v, "XX" + v + "XX")
    elif isinstance(node, ast.Call):
        named = [k for k, kw in enumerate(node.keywords) if kw.arg is not None]
        if variant < len(named):
            node.keywords.pop(named[variant])
        else:
            _replace_child(parent, node, node.args[0])
    elif isinstance(node, ast.Expr):
        _replace_child(parent, node, ast.Pass())
    elif isinstance(node, ast.Attribute):
        node.attr = NAME_SWAP[node.attr]
    elif isinstance(node, ast.Name):
        node.id = NAME_SWAP[node.id]
    return ast.unparse(ast.fix_missing_locations(tree))


def _read(rel: str, rev: str | None) -> str:
    """A file of the working tree, or of git revision ``rev``."""
    if rev is None:
        return (ROOT / rel).read_text()
    import subprocess

    return subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def list_mutants(module: str, rev: str | None = None) -> tuple[list[Mutant], list[Mutant]]:
    """(named mutants, all generic mutants) of one module (as in the working tree, or at ``rev``)."""
    source = _read(MODULES[module][0], rev)
    named = []
    for i, (old, new, desc) in enumerate(NAMED.get(module, [])):
        if source.count(old) != 1:
            named.append(Mutant(f"{module}:named{i}", 0, desc + " [not applicable: code changed]", status="n/a"))
            continue
        line = source[: source.index(old)].count("\n") + 1
        named.append(Mutant(f"{module}:named{i}", line, desc, source=source.replace(old, new)))
    generic = []
    lines = source.splitlines()
    seen_sites: dict[str, int] = {}
    for n, (idx, v, desc, line) in enumerate(_sites(ast.parse(source))):
        site = f"{lines[line - 1].strip()} | {desc}"
        seen_sites[site] = seen_sites.get(site, 0) + 1
        mutated = _apply(source, idx, v)
        generic.append(Mutant(f"{module}:{n}", line, desc, source=mutated, site=f"{site} | {seen_sites[site]}"))
    # drop generic mutants that unparse to the same program as another one (or as the original)
    seen = {ast.unparse(ast.parse(source))}
    unique = []
    for m in generic:
        if m.source not in seen:
            seen.add(m.source)
            unique.append(m)
    return named, unique


def equivalent_reason(module: str, m: Mutant) -> str | None:
    """Why a mutant is equivalent (see :data:`EQUIVALENT`), or None."""
    line = m.site.split(" | ")[0]
    for (mod, code, change), why in EQUIVALENT.items():
        if mod == module and change == m.description and code in line:
            return why
    return None


# -- running ---------------------------------------------------------------------------------------------
def _make_copy(module: str, rev: str | None) -> Path:
    """A temporary copy of the project; with ``rev``, the module and its tests as they were at ``rev``."""
    tmp = Path(tempfile.mkdtemp(prefix="ctstudio-mut-"))
    shutil.copytree(ROOT / "ctstudio", tmp / "ctstudio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", tmp / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    (tmp / "resources").symlink_to(ROOT / "resources")
    if rev is not None:
        src, tests = MODULES[module]
        for rel in (src, *tests):
            (tmp / rel).write_text(_read(rel, rev))
    return tmp


def _run_tests(tmp: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """Run the test files in a forked child importing ctstudio from ``tmp``; 'passed' / 'failed' / 'timeout'."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(tmp)
            sys.path.insert(0, str(tmp))
            sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
            import ctstudio

            if not Path(ctstudio.__file__).resolve().is_relative_to(tmp.resolve()):
                os.write(2, f"ctstudio imported from {ctstudio.__file__}, not the copy\n".encode())
                os._exit(3)
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import pytest

            rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(tmp),
                              "-c", str(tmp / "pyproject.toml"), *[str(tmp / t) for t in tests]])
            os._exit(int(rc))
        except BaseException:  # noqa: BLE001 - the child must never return into the parent's loop
            os._exit(4)
    deadline = t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            return ("passed" if rc == 0 else "failed"), time.perf_counter() - t0
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - t0
        time.sleep(0.05)


def _in_sample(m: Mutant, fraction: float, seed: int) -> bool:
    """A stable sample: a mutant is in it by a hash of its site (line text + change), so the same code
    gives the same sample before and after tests or other lines change."""
    return fraction >= 1.0 or zlib.crc32(f"{seed}|{m.site}".encode()) % 10_000 < fraction * 10_000


def run_module(module: str, fraction: float, seed: int, timeout: float, only: set[str] | None,
               verbose: bool, rev: str | None = None, sites_from: str | None = None) -> dict:
    src_rel, tests = MODULES[module]
    named, generic = list_mutants(module, rev)
    generic_total = len(generic)
    if sites_from is not None:  # only the code that was already there at sites_from (same mutants as then)
        old = {m.site for m in list_mutants(module, sites_from)[1]}
        generic = [m for m in generic if m.site in old]
    chosen = [m for m in generic if _in_sample(m, fraction, seed)]
    mutants = [m for m in named if m.status != "n/a"] + chosen
    if only is not None:
        mutants = [m for m in mutants if m.key in only]
    tmp = _make_copy(module, rev)
    target = tmp / src_rel
    original = target.read_text()
    try:
        base, secs = _run_tests(tmp, tests, timeout * 3)
        if base != "passed":
            raise SystemExit(f"{module}: the tests fail on the unmutated code ({base}); fix that first")
        for m in mutants:
            target.write_text(m.source)
            res, m.seconds = _run_tests(tmp, tests, max(timeout, 3 * secs))
            m.status = {"passed": "survived", "failed": "killed", "timeout": "timeout"}[res]
            if verbose:
                print(f"  {m.key:16s} line {m.line:4d} {m.status:8s} {m.seconds:5.1f}s  {m.description}",
                      flush=True)
        target.write_text(original)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    killed = sum(m.status in ("killed", "timeout") for m in mutants)
    return {
        "module": src_rel, "tests": tests, "rev": rev or "working tree", "seed": seed, "sites_from": sites_from,
        "generic_total": len(generic), "generic_total_all_sites": generic_total, "generic_run": len(chosen),
        "named_run": sum(m.status != "n/a" for m in named) if only is None else None,
        "run": len(mutants), "killed": killed, "score": killed / len(mutants) if mutants else None,
        "baseline_seconds": round(secs, 1),
        "survivors": [{"key": m.key, "line": m.line, "description": m.description,
                       "equivalent": equivalent_reason(module, m)} for m in mutants if m.status == "survived"],
        "named": [{"key": m.key, "description": m.description, "status": m.status} for m in named],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--module", action="append", choices=sorted(MODULES), help="default: all three")
    ap.add_argument("--fraction", type=float, help="share of the generic mutants run (stable hash sample); "
                    f"default per module {FRACTION}")
    ap.add_argument("--all", action="store_true", help="run every generic mutant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant (at least 3x the baseline)")
    ap.add_argument("--only", nargs="*", help="run only these mutant keys (e.g. analysis:17 window:named0)")
    ap.add_argument("--rev", help="take the module and its tests from this git revision (e.g. the BEFORE figure)")
    ap.add_argument("--sites-from", help="only mutants of code that already existed at this revision "
                    "(compare AFTER with BEFORE on the same mutants when others have added code since)")
    ap.add_argument("--rerun-survivors", type=Path, metavar="BEFORE.json",
                    help="run only the named mutants and the mutants of the same code and change as the "
                         "survivors recorded in BEFORE.json (written by --rev REV --json); with tests only "
                         "added since, a mutant killed then is killed now")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    modules = args.module or list(MODULES)
    if args.list:
        for mod in modules:
            named, generic = list_mutants(mod, args.rev)
            for m in named + generic:
                print(f"{m.key:16s} line {m.line:4d}  {m.description}")
        return 0
    os.environ.setdefault("CTSTUDIO_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for name in WARM_IMPORTS:
        try:
            __import__(name)
        except ImportError:
            pass
    only = set(args.only) if args.only else None
    if args.rerun_survivors:
        only = set()
        for rec in json.loads(args.rerun_survivors.read_text()):
            mod = next(k for k, v in MODULES.items() if v[0] == rec["module"])
            then = {m.key: m.site for m in list_mutants(mod, rec["rev"])[1]}
            sites = {then[s["key"]] for s in rec["survivors"] if "named" not in s["key"]}
            named, generic = list_mutants(mod)
            only |= {m.key for m in named} | {m.key for m in generic if m.site in sites}
    results = []
    for mod in modules:
        if not args.quiet:
            print(f"{mod}: {MODULES[mod][0]} against {', '.join(MODULES[mod][1])}", flush=True)
        fraction = 1.0 if args.all else args.fraction if args.fraction is not None else FRACTION[mod]
        results.append(run_module(mod, fraction, args.seed, args.timeout,
                                  only, not args.quiet, args.rev,
                                  args.sites_from))
    print(f"\n{'module':32s} {'mutants run':>14s} {'killed':>7s} {'score':>7s}")
    for r in results:
        run = f"{r['run']} ({r['generic_run']}/{r['generic_total']}+{r['named_run'] or 0})" if r["named_run"] \
            is not None else str(r["run"])
        score = f"{100 * r['score']:.0f}%" if r["score"] is not None else "-"
        print(f"{r['module']:32s} {run:>14s} {r['killed']:>7d} {score:>7s}")
        for s in r["survivors"]:
            why = f"  [equivalent: {s['equivalent']}]" if s["equivalent"] else ""
            print(f"    survived {s['key']:16s} line {s['line']:4d}  {s['description']}{why}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

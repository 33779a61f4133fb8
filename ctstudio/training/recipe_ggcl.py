"""Training recipe ``ggcl``: StarGAN-style multi-domain CT kernel conversion with the GGCL term.

Data: ``--data DIR`` holds volumes (NIfTI / MHA / NRRD files, or DICOM series in subfolders). A volume
belongs to a kernel domain when the domain name appears as a token of its file or folder name
(``phantom_UB-std.nii.gz`` -> ``UB``), else by its DICOM kernel tag. With ``paired=True`` (the same
acquisition reconstructed with each kernel, aligned voxel for voxel), the i-th volume of each domain
forms a pair; the optional paired L1 term then uses it, and evaluation compares the converted slices
with the real other-kernel slices. The last ``holdout`` slices of every volume (after a ``gap``) are
never trained on: they are the evaluation set.

One ``train_step`` = ``n_critic`` discriminator updates + one generator update (WGAN-GP).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctstudio.errors import ConfigError, InputError
from ctstudio.imaging.intensity import HURange, hu_to_model
from ctstudio.io import VOLUME_SUFFIXES
from ctstudio.models.stargan import StarGenerator, UNetDiscriminator
from ctstudio.training.trainer import Recipe
from ctstudio.translation import ggcl



@dataclass(frozen=True)
class GGCLConfig:
    domains: tuple[str, ...] = ("B30f", "B50f", "B70f")
    g_conv_dim: int = 64
    g_repeat: int = 6
    residual: bool = False
    d_conv_dim: int = 32
    d_levels: int = 7
    crop: int = 512
    batch_size: int = 2
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    lambda_cls: float = 1.0
    lambda_cyc: float = 10.0
    lambda_gp: float = 10.0
    lambda_ggcl: float = 2.0
    lambda_pair: float = 0.0
    guide: str = "ggcl"
    num_patches: int = 64
    tau: float = 0.07
    paired: bool = False
    holdout: int = 4
    gap: int = 2
    min_foreground: float = 0.1
    hu_lower: float = -1024.0
    hu_upper: float = 3071.0
    steps: int = 200000
    checkpoint_every: int = 1000

    def __post_init__(self):
        if len(self.domains) < 2:
            raise ConfigError("GGCL needs at least two kernel domains")
        if self.crop % (2 ** self.d_levels) or self.crop // 2 ** self.d_levels < 2:
            raise ConfigError(f"crop {self.crop} must be a multiple of 2**d_levels ({2 ** self.d_levels}) "
                              "with >= 2 px at the bottom")
        if self.guide not in ggcl.GUIDES:
            raise ConfigError(f"guide must be one of {ggcl.GUIDES}")
        if self.n_critic < 1 or self.batch_size < 1:
            raise ConfigError("n_critic and batch_size must be >= 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["domains"] = list(self.domains)
        d["hu_range"] = self.hu_range.to_dict()
        return d

    @property
    def hu_range(self) -> HURange:
        return HURange(self.hu_lower, self.hu_upper, "12-bit" if (self.hu_lower, self.hu_upper) == (-1024, 3071) else "")

    @property
    def weights(self) -> ggcl.LossWeights:
        # the flat config carries LossWeights' fields by name (JSON config files override them one by one)
        return ggcl.LossWeights(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ggcl.LossWeights)})

    @classmethod
    def paper(cls) -> "GGCLConfig":
        """The published setting: 512² slices, 7-level U-Net discriminator, n_critic 5, unpaired."""
        return cls()

    @classmethod
    def tiny(cls) -> "GGCLConfig":
        """Seconds on a CPU: for tests."""
        return cls(domains=("UB", "YA"), g_conv_dim=8, g_repeat=1, residual=True, d_conv_dim=8, d_levels=3,
                   crop=32, batch_size=2, n_critic=1, num_patches=16, paired=True, lambda_pair=10.0, steps=4,
                   checkpoint_every=2)

    @classmethod
    def demo(cls) -> "GGCLConfig":
        """The bundled demo (head phantom UB <-> YA, paired). Cheaper than the paper on purpose (n_critic 1,
        64² crops, lr 2e-4, a paired L1 term) so that it trains on a shared 2-core CPU in well under an hour."""
        return cls(domains=("UB", "YA"), g_conv_dim=16, g_repeat=4, residual=True, d_conv_dim=16, d_levels=4,
                   crop=64, batch_size=4, n_critic=1, paired=True, lambda_pair=10.0, holdout=6, gap=2, steps=3000,
                   lr=2e-4, checkpoint_every=250)


def _strip_suffix(name: str) -> str:
    for s in VOLUME_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def _domain_of(name: str, kernel: str, domains) -> str | None:
    tokens = {t.lower() for t in re.split(r"[^A-Za-z0-9]+", name) if t}
    for d in domains:
        if d.lower() in tokens:
            return d
    for d in domains:
        if kernel and kernel.strip().lower() == d.lower():
            return d
    return None


def find_domain_volumes(data_dir: Path, domains) -> dict[str, list[Path]]:
    """``{domain: [paths]}`` of the volumes under ``data_dir`` (sorted by name)."""
    from ctstudio.io import read_volume

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError("the training data folder does not exist", path=data_dir,
                         hint="give --data a folder of volumes, one or more per kernel")
    found: dict[str, list[Path]] = {d: [] for d in domains}
    for p in sorted(data_dir.iterdir()):
        if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES):
            d = _domain_of(_strip_suffix(p.name), "", domains)
        elif p.is_dir():
            d = _domain_of(p.name, "", domains)
            if d is None:
                try:
                    d = _domain_of("", read_volume(p).metadata.kernel, domains)
                except InputError:
                    d = None
        else:
            continue
        if d is not None:
            found[d].append(p)
    missing = [d for d, ps in found.items() if not ps]
    if missing:
        raise InputError(f"no volume found for kernel(s) {', '.join(missing)}", path=data_dir,
                         hint="name files or folders with the kernel as a token (e.g. scan_B30f.nii.gz)")
    return found


class GGCLRecipe(Recipe):
    kind = "ggcl"
    ema_modules = ("G",)
    ema_decay = 0.999
    export_modules = ("G",)
    preview_window = "bone"
    ddp_find_unused = True  # the generator loss leaves the critic's feature head without a gradient

    def __init__(self, config: GGCLConfig, data_dir: Path | None = None):
        self.config = config
        self.name = "ggcl-model"
        self.data_dir = data_dir
        c = config
        n = len(c.domains)
        with torch.random.fork_rng():  # the same initial weights whatever the caller's RNG state
            torch.manual_seed(0)
            self.G = StarGenerator(n, conv_dim=c.g_conv_dim, n_res=c.g_repeat, residual=c.residual)
            self.D = UNetDiscriminator(c.crop, n, conv_dim=c.d_conv_dim, n_levels=c.d_levels,
                                       feature_channels=self.G.feature_channels)
        self.modules = {"G": self.G, "D": self.D}
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
        }
        self.device = torch.device("cpu")
        #: a preview (source | converted | real target kernel) with every checkpoint
        self.preview_every = c.checkpoint_every
        self._volumes: dict[str, list[np.ndarray]] | None = None
        self._sources: list[str] = []

    # -- data ------------------------------------------------------------------------------
    def load_data(self, data_dir: Path | None = None) -> dict[str, list[np.ndarray]]:
        if self._volumes is not None:
            return self._volumes
        from ctstudio.io import read_volume

        data_dir = Path(data_dir or self.data_dir or "")
        if not str(data_dir):
            raise InputError("GGCL training needs --data DIR")
        found = find_domain_volumes(data_dir, self.config.domains)
        from ctstudio.training.datasets import describe_volume

        vols, files = {}, []
        for d, paths in found.items():
            vols[d] = []
            for p in paths:
                v = read_volume(p)
                vols[d].append(v.array)
                files.append({**describe_volume(p, v), "domain": d})
            self._sources += [p.name for p in paths]
        self.data_files = files
        c = self.config
        for d, vs in vols.items():
            for v in vs:
                if v.shape[0] - c.holdout - c.gap < 1 or min(v.shape[1:]) < c.crop:
                    raise InputError(f"a {d} volume of shape {v.shape} is too small for crop {c.crop} with "
                                     f"{c.holdout} held-back slices", path=data_dir)
        if c.paired:
            counts = {len(vs) for vs in vols.values()}
            shapes_ok = len(counts) == 1 and all(
                len({vols[d][i].shape for d in c.domains}) == 1 for i in range(len(vols[c.domains[0]])))
            if not shapes_ok:
                raise InputError("paired=True needs the same number of volumes per kernel, of matching shapes",
                                 path=data_dir, hint="set paired to false for unpaired data")
        self._volumes = vols
        self.data_dir = data_dir
        return vols

    def _train_range(self, v: np.ndarray) -> int:
        return v.shape[0] - self.config.holdout - self.config.gap

    def make_batches(self, data_dir, rng: np.random.Generator):
        c = self.config
        vols = self.load_data(data_dir)
        n = len(c.domains)
        rng_range = c.hu_range
        while True:
            xs, pairs, org, trg = [], [], [], []
            for _ in range(self.global_batch_size()):
                a = int(rng.integers(0, n))
                b = int((a + rng.integers(1, n)) % n)
                vi = int(rng.integers(0, len(vols[c.domains[a]])))
                va = vols[c.domains[a]][vi]
                vb = vols[c.domains[b]][vi] if c.paired else None
                for _try in range(10):
                    z = int(rng.integers(0, self._train_range(va)))
                    y = int(rng.integers(0, va.shape[1] - c.crop + 1))
                    x = int(rng.integers(0, va.shape[2] - c.crop + 1))
                    crop_a = va[z, y:y + c.crop, x:x + c.crop]
                    if (crop_a > -900).mean() >= c.min_foreground:
                        break
                k = int(rng.integers(0, 4))
                flip = bool(rng.random() < 0.5)
                crops = [crop_a] + ([vb[z, y:y + c.crop, x:x + c.crop]] if vb is not None else [])
                crops = [np.rot90(cr[:, ::-1] if flip else cr, k) for cr in crops]
                xs.append(hu_to_model(np.ascontiguousarray(crops[0]), rng_range))
                if vb is not None:
                    pairs.append(hu_to_model(np.ascontiguousarray(crops[1]), rng_range))
                org.append(a)
                trg.append(b)
            batch = {"x": torch.from_numpy(np.stack(xs)[:, None]), "org": torch.tensor(org), "trg": torch.tensor(trg)}
            if pairs:
                batch["pair"] = torch.from_numpy(np.stack(pairs)[:, None])
            yield batch

    # -- one step ---------------------------------------------------------------------------
    def train_step(self, batch, step: int, nets: dict | None = None) -> dict[str, float]:
        G, D = ((nets or self.modules)[k] for k in ("G", "D"))
        dev = self.device
        x = batch["x"].to(dev)
        org, trg = batch["org"].to(dev), batch["trg"].to(dev)
        pair = batch["pair"].to(dev) if "pair" in batch else None
        w = self.config.weights
        out: dict[str, float] = {}
        for _ in range(self.config.n_critic):
            d_loss, d_out = ggcl.discriminator_loss(G, D, x, org, trg, w)
            self.optimizers["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizers["D"].step()
            out.update(d_out)
        g_loss, g_out = ggcl.generator_loss(G, D, x, org, trg, w, x_pair=pair)
        self.optimizers["G"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["G"].step()
        out.update(g_out)
        out["loss"] = out["G/loss"]
        return out

    # -- evaluation ----------------------------------------------------------------------------
    def converter(self):
        from ctstudio.translation.kernels import KernelConverter

        return KernelConverter(self.G, list(self.config.domains), self.config.hu_range, self.name, device=self.device)

    def heldout_slices(self) -> dict[str, np.ndarray]:
        """The held-back slices of the first volume of each domain (paired: the same positions)."""
        c = self.config
        vols = self.load_data()
        return {d: vs[0][vs[0].shape[0] - c.holdout:] for d, vs in vols.items()} if c.holdout > 0 else {}

    def evaluate(self) -> dict:
        """PSNR/SSIM of converted vs the real other-kernel held-back slices, with the identity baseline."""
        c = self.config
        if not c.paired or c.holdout <= 0:
            return {}
        from ctstudio.metrics.ssim import psnr, ssim

        held = self.heldout_slices()
        conv = self.converter()
        training = self.G.training
        self.G.eval()
        rows = []
        try:
            for a in c.domains:
                for b in c.domains:
                    if a == b:
                        continue
                    src, real = held[a].astype(np.float32), held[b].astype(np.float32)
                    out = np.concatenate([conv.convert_slices(src[i:i + 2], b) for i in range(0, len(src), 2)])
                    out = np.rint(np.clip(out, c.hu_lower, c.hu_upper))
                    rows.append({
                        "direction": f"{a}->{b}", "slices": int(len(src)),
                        "psnr_identity": round(psnr(src, real), 3), "psnr_converted": round(psnr(out, real), 3),
                        "ssim_identity": round(ssim(src, real), 4), "ssim_converted": round(ssim(out, real), 4),
                    })
        finally:
            self.G.train(training)
        return {"evaluation": {"heldout": f"last {c.holdout} slices of each volume (after a {c.gap}-slice gap)",
                               "data_range_hu": 4095, "rows": rows}}

    def preview_slices(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The fixed slice of the preview (HU): the first domain's first held-back slice (no hold-back: the middle
        training slice of its first volume), and the same slice in the second domain where the data are paired."""
        c = self.config
        a, b = c.domains[0], c.domains[1]
        held = self.heldout_slices()
        if held:
            return held[a][0], (held[b][0] if c.paired else None)
        vols = self.load_data()
        z = self._train_range(vols[a][0]) // 2
        return vols[a][0][z], (vols[b][0][z] if c.paired else None)

    @torch.no_grad()
    def preview(self, step: int):
        """Source | converted to the second kernel (| the real slice in that kernel, paired data), in HU."""
        if self._volumes is None and self.data_dir is None:
            return None
        src, real = self.preview_slices()
        training = self.G.training
        self.G.eval()
        try:
            out = self.converter().convert_slices(src[None].astype(np.float32), self.config.domains[1])[0]
        finally:
            self.G.train(training)
        return np.stack([src, out] + ([real] if real is not None else [])).astype(np.float32)

    def export_card(self) -> dict:
        c = self.config
        data = sorted(set(self._sources))
        n_slices = sum(v.shape[0] - c.holdout - c.gap for vs in (self._volumes or {}).values() for v in vs)
        return {
            "summary": f"GGCL kernel conversion {' <-> '.join(c.domains)}, trained on {n_slices} slices "
                       f"of {len(data)} volume(s)",
            "method": ("StarGAN-style generator + U-Net discriminator with the GGCL (PatchNCE) term, "
                       "after Choi et al., MICCAI 2023" if c.guide == "ggcl" else f"StarGAN ({c.guide} guide)"),
            "domains": list(c.domains),
            "data_licence": data_licence(data),
            "hu_range": [c.hu_lower, c.hu_upper],
            "limitations": [
                "not validated beyond the evaluation in this card; not for clinical use",
                f"{'paired L1 term used (lambda_pair ' + str(c.lambda_pair) + ')' if c.lambda_pair else 'unpaired'}; "
                f"n_critic {c.n_critic}, {c.crop}² crops",
            ],
        }


#: licences of the public sets in ../shared/data (see its README), by file name
KNOWN_DATA = {
    "phantom_UB-std_slices24-55.nii.gz": "BSD-2-Clause (neurolabusc/dcm_qa_ct, (c) 2019 Chris Rorden; phantom "
                                         "data credited to Paul Morgan, Nottingham)",
    "phantom_YA-bone_slices24-55.nii.gz": "BSD-2-Clause (neurolabusc/dcm_qa_ct, (c) 2019 Chris Rorden; phantom "
                                          "data credited to Paul Morgan, Nottingham)",
    "chest_ct_slices038-101.nii.gz": "Apache-2.0 (InsightSoftwareConsortium/ITKElastix examples/data/00, "
                                     "commit 787db6d; origin of the scan not stated)",
}


def data_licence(names) -> str:
    lic = sorted({KNOWN_DATA.get(n, f"{n}: unknown licence, check before sharing") for n in names})
    return "; ".join(lic)


def build(config: str, data_dir: Path | None = None) -> GGCLRecipe:
    from ctstudio.training.recipes import load_config

    recipe = GGCLRecipe(load_config(GGCLConfig, config), data_dir)
    recipe.name = f"ggcl-{config}" if config in ("tiny", "demo", "paper") else "ggcl-model"
    return recipe

"""GGCL losses: WGAN-GP adversarial, domain classification, cycle reconstruction and the
generator-guided contrastive (PatchNCE) term of Choi et al. (MICCAI 2023); GGDR and plain StarGAN too.

The GGCL term lives in the *discriminator* loss: the discriminator's decoder feature map (queries)
is pulled towards the generator's decoder feature map (keys, detached) at the same locations
(positives) and away from other locations of the same image (negatives), PatchNCE with temperature
``tau`` over ``num_patches`` sampled locations. ``guide="ggdr"`` replaces PatchNCE by a cosine
distance of the whole maps (GGDR); ``guide="none"`` is plain StarGAN.

Everything here is a plain function of tensors, so each term can be tested by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

GUIDES = ("ggcl", "ggdr", "none")


@dataclass(frozen=True)
class LossWeights:
    lambda_cls: float = 1.0
    lambda_cyc: float = 10.0
    lambda_gp: float = 10.0
    lambda_ggcl: float = 2.0
    #: optional paired L1 (source translated vs the real target-kernel image of the same slice).
    #: 0 in the paper (unpaired); the demo uses it because the phantom's two kernels are aligned.
    lambda_pair: float = 0.0
    guide: str = "ggcl"
    num_patches: int = 64
    tau: float = 0.07

    def __post_init__(self):
        if self.guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {self.guide!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def l2_normalise(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return x / (x.norm(p=2, dim=1, keepdim=True) + eps)


def patch_sample(feat: torch.Tensor, num_patches: int, patch_ids: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the same ``num_patches`` locations from every image of ``feat`` (B, C, H, W).

    Returns ``(vectors (B*P, C) L2-normalised, patch_ids (P,))``; pass ``patch_ids`` back to sample
    the other feature map at the same locations.
    """
    b, c, h, w = feat.shape
    flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
    if patch_ids is None:
        perm = torch.randperm(h * w, generator=generator, device="cpu")
        patch_ids = perm[: min(num_patches, h * w)].to(feat.device)
    vecs = flat[:, patch_ids, :].reshape(-1, c)
    return l2_normalise(vecs), patch_ids


def patch_nce(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, tau: float = 0.07) -> torch.Tensor:
    """PatchNCE (InfoNCE over patches) of queries ``feat_q`` against keys ``feat_k``, both (B*P, C).

    For each query, the positive is the key at the same location, the negatives are the keys at the
    other P-1 locations of the same image. Keys are detached. Returns the mean cross-entropy.
    """
    feat_k = feat_k.detach()
    n, dim = feat_q.shape
    l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)  # (N, 1)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    p = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(1, 2))  # (B, P, P)
    eye = torch.eye(p, dtype=torch.bool, device=q.device)[None]
    l_neg = l_neg.masked_fill(eye, -10.0).view(-1, p)  # the diagonal is the positive: exp(-10/tau) ~ 0
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    target = torch.zeros(n, dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """GGDR's guide: 1 - mean cosine similarity over locations (channel axis 1); ``y`` is the detached target."""
    return 1.0 - F.cosine_similarity(x, y.detach(), dim=1).mean()


def guide_loss(d_feat: torch.Tensor, g_feat: torch.Tensor, w: LossWeights,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The generator-guided term for the discriminator: queries from D's decoder, keys from G's (detached)."""
    if d_feat.shape != g_feat.shape:
        raise ValueError(f"feature maps differ: discriminator {tuple(d_feat.shape)} vs generator {tuple(g_feat.shape)}")
    if w.guide == "ggdr":
        return cosine_distance(d_feat, g_feat)
    if w.guide == "ggcl":
        k, ids = patch_sample(g_feat.detach(), w.num_patches, generator=generator)
        q, _ = patch_sample(d_feat, w.num_patches, patch_ids=ids)
        return patch_nce(q, k, batch_size=d_feat.shape[0], tau=w.tau)
    return d_feat.new_zeros(())


def gradient_penalty(critic_out: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean over the batch of (||d critic / d x_hat||_2 - 1)^2."""
    grad = torch.autograd.grad(outputs=critic_out, inputs=x_hat, grad_outputs=torch.ones_like(critic_out),
                               create_graph=True, retain_graph=True, only_inputs=True)[0]
    grad = grad.reshape(grad.shape[0], -1)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(labels, n).float()


def discriminator_loss(G, D, x_real: torch.Tensor, label_org: torch.Tensor, label_trg: torch.Tensor,
                       w: LossWeights, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """One critic objective: WGAN real/fake + lambda_cls * CE(real) + lambda_gp * GP (+ lambda_ggcl * guide)."""
    n = D.cls.out_channels
    src_real, cls_real, _ = D(x_real)
    d_real = -src_real.mean()
    d_cls = classification_loss(cls_real, label_org)
    with torch.no_grad():
        x_fake, g_feat = G(x_real, one_hot(label_trg, n))
    src_fake, _, d_feat = D(x_fake.detach())
    d_fake = src_fake.mean()
    alpha = torch.rand(x_real.shape[0], 1, 1, 1, generator=generator).to(x_real.device)
    x_hat = (alpha * x_real.detach() + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    src_hat, _, _ = D(x_hat)
    d_gp = gradient_penalty(src_hat, x_hat)
    loss = d_real + d_fake + w.lambda_cls * d_cls + w.lambda_gp * d_gp
    out = {"D/real": d_real.item(), "D/fake": d_fake.item(), "D/cls": d_cls.item(), "D/gp": d_gp.item()}
    if w.guide != "none":
        d_guide = guide_loss(d_feat, g_feat, w, generator=generator)
        loss = loss + w.lambda_ggcl * d_guide
        out[f"D/{w.guide}"] = d_guide.item()
    out["D/loss"] = loss.item()
    return loss, out


def generator_loss(G, D, x_real: torch.Tensor, label_org: torch.Tensor, label_trg: torch.Tensor,
                   w: LossWeights, x_pair: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """-critic(fake) + lambda_cls * CE(fake, trg) + lambda_cyc * L1(cycle) (+ lambda_pair * L1(fake, pair))."""
    n = D.cls.out_channels
    x_fake, _ = G(x_real, one_hot(label_trg, n))
    src_fake, cls_fake, _ = D(x_fake)
    g_fake = -src_fake.mean()
    g_cls = classification_loss(cls_fake, label_trg)
    x_rec, _ = G(x_fake, one_hot(label_org, n))
    g_cyc = (x_real - x_rec).abs().mean()
    loss = g_fake + w.lambda_cls * g_cls + w.lambda_cyc * g_cyc
    out = {"G/fake": g_fake.item(), "G/cls": g_cls.item(), "G/cyc": g_cyc.item()}
    if w.lambda_pair > 0 and x_pair is not None:
        g_pair = (x_fake - x_pair).abs().mean()
        loss = loss + w.lambda_pair * g_pair
        out["G/pair"] = g_pair.item()
    out["G/loss"] = loss.item()
    return loss, out

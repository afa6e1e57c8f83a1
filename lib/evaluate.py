"""Evaluation: ELBO, importance-sampled log p(x) (IWAE bound), and exact log p(x) for 2-D latents.

All log-likelihoods are in nats per example. For implicit encoders the importance distribution is
a diagonal Gaussian fitted to posterior samples (as AVB's code does for AIS); for adaptive
contrast it is the encoder's exact moment-matched Gaussian; for the VAE, the encoder itself.
IWAE-k (Burda et al. 2016) is a lower bound on log p(x) for every k and tends to it as k grows.
"""
from __future__ import annotations

import math

import torch
import torch.distributions as D

from .method import Method
from .nets import GaussianEncoder, MomentEncoder


@torch.no_grad()
def proposal(method: Method, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
    """Diagonal-Gaussian importance distribution for p(z|x): batch shape (B,), event (Z,).

    n_fit: posterior samples per x used to fit mean and std when the encoder is implicit.
    std_scale: widen the fitted std (heavier tails make importance weights safer).
    """
    enc = method.encoder
    if isinstance(enc, MomentEncoder):
        _, mean, std = enc.sample_with_moments(x)
    elif isinstance(enc, GaussianEncoder):
        q = enc(x)
        mean, std = q.base_dist.loc, q.base_dist.scale
    else:
        B = x.shape[0]
        xs = x.unsqueeze(0).expand(n_fit, *x.shape).reshape(n_fit * B, *x.shape[1:])
        z = enc.sample(xs).view(n_fit, B, -1)
        mean, std = z.mean(0), z.std(0).clamp_min(1e-4)
    return D.Independent(D.Normal(mean, std * std_scale), 1)


@torch.no_grad()
def iwae_log_px(method: Method, x: torch.Tensor, k: int = 1000, chunk: int = 100, n_fit: int = 128,
                std_scale: float = 1.0) -> torch.Tensor:
    """Importance-sampled log p(x) = log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x), z_i ~ r(.|x).

    x: (B, *x_shape) in {0, 1}. k: importance samples per x (drawn ``chunk`` at a time).
    returns: (B,) nats, a stochastic lower bound on log p(x) (IWAE-k).
    raises ValueError if k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    r = proposal(method, x, n_fit=n_fit, std_scale=std_scale)
    prior = method.prior(x.device)
    B = x.shape[0]
    logw = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        z = r.sample((c,))  # (c, B, Z)
        xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * B, *x.shape[1:])
        log_lik = method.decoder.log_prob(xs, z.reshape(c * B, -1)).view(c, B)
        logw.append(log_lik + prior.log_prob(z) - r.log_prob(z))
    return torch.logsumexp(torch.cat(logw, 0), 0) - math.log(k)


def mean_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-D tensor."""
    v = values.double()
    return float(v.mean()), float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")


@torch.no_grad()
def evaluate_log_px(method: Method, x: torch.Tensor, k: int = 1000, batch_size: int = 100, **kw) -> dict:
    """IWAE-k log p(x) over a whole evaluation set x (N, *x_shape), in batches.

    returns: {"value": mean nats, "sem": standard error over images, "n": N, "k": k,
    "implementation": description}.
    """
    method.eval()
    vals = torch.cat([iwae_log_px(method, x[i:i + batch_size], k=k, **kw).cpu() for i in range(0, x.shape[0], batch_size)])
    m, s = mean_sem(vals)
    return {"value": m, "sem": s, "n": int(x.shape[0]), "k": k,
            "implementation": f"importance sampling (IWAE-{k}), diagonal-Gaussian proposal"}


@torch.no_grad()
def evaluate_elbo(method: Method, x: torch.Tensor, batch_size: int = 500, repeats: int = 1) -> dict:
    """Mean ELBO over x (N, *x_shape) with ``method.elbo_terms`` (AVB: the adversary's KL estimate).

    returns: {"value", "sem", "n", "rec", "kl", "implementation"} in nats.
    """
    method.eval()
    parts = {"elbo": [], "rec": [], "kl": []}
    for _ in range(repeats):
        for i in range(0, x.shape[0], batch_size):
            t = method.elbo_terms(x[i:i + batch_size])
            for key in parts:
                parts[key].append(t[key].cpu())
    vals = {k: torch.cat(v) for k, v in parts.items()}
    m, s = mean_sem(vals["elbo"])
    analytic = type(method).__name__ == "VAE"
    return {"value": m, "sem": s, "n": int(x.shape[0]), "rec": float(vals["rec"].mean()), "kl": float(vals["kl"].mean()),
            "implementation": "ELBO, analytic KL" if analytic else "ELBO, KL estimated by the adversary T"}


@torch.no_grad()
def exact_log_px_2d(decoder, x: torch.Tensor, lim: float = 6.0, n: int = 301) -> torch.Tensor:
    """log p(x) = log integral p(x|z) N(z; 0, I) dz for a 2-D latent, by a Riemann sum on an n x n grid of
    equally spaced nodes over [-lim, lim]^2 (the prior mass outside is < 1e-7 for lim = 6).

    x: (B, *x_shape). returns: (B,) nats. An estimator-free reference for the toy experiments.
    """
    g = torch.linspace(-lim, lim, n, device=x.device)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    log_dz = 2 * math.log(float(g[1] - g[0]))
    log_prior = D.Normal(0.0, 1.0).log_prob(zz).sum(1)
    out = []
    for xi in x:
        log_lik = decoder.log_prob(xi.unsqueeze(0).expand(zz.shape[0], *xi.shape), zz)
        out.append(torch.logsumexp(log_lik + log_prior, 0) + log_dz)
    return torch.stack(out)

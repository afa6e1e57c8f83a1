"""The losses several games share: the logistic discriminator loss, the f-GAN bound on a KL divergence, the Gaussian
KL and the VAE loss with a unit-variance Gaussian likelihood.

* :func:`discriminator_loss`: AS-VAE's two discriminators (Pu et al. 2017, Lemma 1), AVAE's C and the GAN, VAE/GAN and
  BiGAN baselines (Goodfellow et al. 2014, Eq. 1 negated);
* :func:`kl_fgan_objective`: BAVAE's three KL games (Nowozin et al. 2016; Fickinger 2019, Eqs. 6 and 14);
* :func:`gaussian_kl`, :func:`vae_loss`: AVAE's VAE part and the DCGAN-network VAE baseline (Kingma & Welling 2014,
  App. B).

Logistic losses use softplus: log sigma(t) = -softplus(-t), log(1 - sigma(t)) = -softplus(t), finite for saturated
logits. Every function raises ValueError for mismatched shapes that would otherwise broadcast silently.
"""
from __future__ import annotations

import torch
import torch.distributions as D
import torch.nn.functional as F


def _check_weights(t: torch.Tensor, w: torch.Tensor | None, t_name: str, w_name: str) -> None:
    if w is not None and w.shape != t.shape:
        raise ValueError(f"{w_name} must have the shape of {t_name}, {tuple(t.shape)}, got {tuple(w.shape)}")


def discriminator_loss(f_pos: torch.Tensor, f_neg: torch.Tensor, w_pos: torch.Tensor | None = None,
                       w_neg: torch.Tensor | None = None) -> torch.Tensor:
    """Negative of the logistic discriminator's objective (Pu et al. 2017, Lemma 1), to be *minimised* over the
    discriminator.

    f_pos: (N,) logits on samples of P (the "positives"); f_neg: (M,) logits on samples of Q.
    w_pos, w_neg: optional weights (e.g. exact probabilities of a discrete toy; each should sum to 1);
    without them the means are used.
    returns: scalar -[E_P log sigma(f) + E_Q log(1 - sigma(f))] via softplus; its minimiser is
    f* = log P - log Q (Pu et al. 2017, Lemma 1).
    raises ValueError if a weight tensor's shape differs from its logits' (it would broadcast silently).
    """
    for f, w, names in ((f_pos, w_pos, "f_pos / w_pos"), (f_neg, w_neg, "f_neg / w_neg")):
        if w is not None and w.shape != f.shape:
            raise ValueError(f"{names}: the weights must have the logits' shape {tuple(f.shape)}, got {tuple(w.shape)}")
    lp, ln = F.softplus(-f_pos), F.softplus(f_neg)
    lp = lp.mean() if w_pos is None else (w_pos * lp).sum()
    ln = ln.mean() if w_neg is None else (w_neg * ln).sum()
    return lp + ln


def kl_fgan_objective(t_p: torch.Tensor, t_q: torch.Tensor, w_p: torch.Tensor | None = None,
                      w_q: torch.Tensor | None = None) -> torch.Tensor:
    """The f-GAN variational lower bound on KL(P || Q): E_P T - E_Q e^{T - 1} (Nowozin et al. 2016, Eq. 4 with
    f(u) = u log u; Fickinger 2019, Eqs. 6 and 14).

    t_p: (N,) T on samples (or support points) of P; t_q: (M,) T on samples of Q. w_p, w_q: optional weights, e.g.
    exact probabilities of a discrete toy or quadrature weights (each should sum to 1); without them the means
    are used. returns: scalar in nats. Its maximiser over T is T* = 1 + log P/Q, where it equals KL(P || Q);
    any other T gives less. Keep T bounded above (:func:`lib.bavae.bounded`) wherever P/Q may be unbounded.
    raises ValueError if a weight tensor's shape differs from its T's (it would broadcast silently).
    """
    _check_weights(t_p, w_p, "t_p", "w_p")
    _check_weights(t_q, w_q, "t_q", "w_q")
    e = torch.exp(t_q - 1)
    ep = t_p.mean() if w_p is None else (w_p * t_p).sum()
    eq = e.mean() if w_q is None else (w_q * e).sum()
    return ep - eq


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per example, analytic (``torch.distributions``): (B,) nats.
    mu: (B, Z); sigma: (B, Z) or (Z,) standard deviations. raises ValueError for other shapes."""
    if mu.dim() != 2 or sigma.shape not in (mu.shape, mu.shape[1:]):
        raise ValueError(f"gaussian_kl needs mu (B, Z) and sigma (B, Z) or (Z,), got {tuple(mu.shape)} and "
                         f"{tuple(sigma.shape)}")
    q = D.Normal(mu, sigma.expand_as(mu), validate_args=False)
    return D.kl_divergence(q, D.Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)).sum(1)


def vae_loss(x: torch.Tensor, x_rec: torch.Tensor, mu: torch.Tensor, log_sigma_e: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
    """The VAE loss with a unit-variance Gaussian likelihood, per example: beta KL(N(mu, sigma_e^2) || N(0, I))
    + 1/2 ||x - x_rec||^2 (AVAE's L_E; the DCGAN-network VAE baseline's loss).

    x, x_rec: (B, *x_shape) data and decoder output Dec(z) at z ~ q(z|x) (reparameterised); mu: (B, Z) encoder means;
    log_sigma_e: (Z,) (or (B, Z)) log standard deviations. The KL is analytic,
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - 2 log sigma_j) (Kingma & Welling 2014, App. B); the squared error is summed
    over all dimensions (a Gaussian likelihood of unit variance up to a constant, in nats). beta: the KL weight of the
    reference notes' L_E (beta = 1: the negative ELBO up to a constant). returns: (B,).
    raises ValueError if beta < 0 or x and x_rec differ in shape.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {tuple(x.shape)} and {tuple(x_rec.shape)}")
    return beta * gaussian_kl(mu, log_sigma_e.exp()) + 0.5 * (x - x_rec).flatten(1).pow(2).sum(1)

"""Adversarial Variational Auto Encoder (Plumerault, Le Borgne & Hudelot, ICPR 2020, arXiv:2012.11551): its losses.

AVAE keeps a VAE (encoder E with mean mu_e(x) and a *data-independent* standard deviation sigma_e, a (Z,) vector;
decoder Dec trained by the VAE loss only) and adds a generator G(z, xi) and a discriminator C (REFERENCE.md Sec. 4):

    L_E = beta KL(N(mu_e(x), sigma_e^2) || N(0, I)) + 1/2 ||x - Dec(z)||^2          (:func:`vae_loss`)
    L_G = adversarial term on C(G(z, xi)) + L_Z(G(z, xi))                            (:func:`generator_loss`)
    L_C = BCE(C(x), 1) + BCE(C(G), 0)                                                (:func:`lib.asvae.discriminator_loss`)

The *latent reconstruction loss* L_Z replaces the pixel MSE, whose optimum E[x|z] averages plausible images (blur).
Slides, Eq. 4, with f(x_hat) = mu_e(x_hat)/sigma_e and g(x) = sqrt(1 - sigma_e^2) z / sigma_e:

    L_Z(x_hat) = 1/2 || (mu_e(x_hat) - sqrt(1 - sigma_e^2) z) / sigma_e ||^2,

whose optimum mu_e(x_hat*(z)) = sqrt(1 - sigma_e^2) z has the law N(0, I - diag sigma_e^2) of mu_e(x) for x ~ data
whenever the aggregated posterior equals the prior (notebook 40, Sec. 2), so it does not contradict the GAN's optimum.
The authors' released code uses another form (``variant="code"``; see :func:`latent_reconstruction_loss`).
This module holds the losses only; the model class comes later.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

L_Z_VARIANTS = ("slides", "code")


def latent_reconstruction_loss(mu_e_xhat: torch.Tensor, z: torch.Tensor, log_sigma_e: torch.Tensor,
                               variant: str = "slides") -> torch.Tensor:
    """AVAE's latent reconstruction loss L_Z, per example.

    mu_e_xhat: (B, Z) encoder means of the generated images, mu_e(G(z, xi)). z: (B, Z) the codes G was given.
    log_sigma_e: (Z,) log of the encoder's data-independent standard deviation (a (B, Z) tensor broadcasts too).
    variant:
      * ``"slides"`` (the repository's default; slides Eq. 4): 1/2 sum_j ((mu_j - sqrt(1 - s_j^2) z_j) / s_j)^2,
        s = sigma_e; a squared distance in units of the encoder's noise (nats-like: it is -log N(sqrt(1-s^2) z; mu, s^2)
        up to a constant). Optimum over mu for given z: sqrt(1 - s^2) z; for z random given the conditioning,
        sqrt(1 - s^2) E[z | ...].
      * ``"code"``: the released code's precision-weighted form, *as described in our reference notes*
        (REFERENCE.md Sec. 4 [C]), not re-read from the code: 1/2 sum_j w_j (mu_j - z_j)^2 with
        w = softmax(-2 log s) = (1/s^2) / sum_k (1/s_k^2) (precision weights normalised to sum to 1) and no
        sqrt(1 - s^2). Its optimum is mu = z, whose law N(0, I) is *not* that of mu_e(x) (notebook 40). The notes say
        the code sums over the batch; this returns per-example values, so sum them (not mean) to match. The overall
        factor 1/2 is ours (not recorded in the notes); it only rescales L_Z against the adversarial term.
    returns: (B,) per-example loss.
    raises ValueError for an unknown variant (listing the known ones), for shape mismatches, and, for ``"slides"``,
    when some sigma_e >= 1 (sqrt(1 - sigma_e^2) is then undefined or zero: the code would carry no information).
    """
    if variant not in L_Z_VARIANTS:
        raise ValueError(f"unknown L_Z variant {variant!r}: use one of {L_Z_VARIANTS}")
    if mu_e_xhat.shape != z.shape or mu_e_xhat.dim() != 2:
        raise ValueError(f"mu_e_xhat and z must both be (B, Z), got {tuple(mu_e_xhat.shape)} and {tuple(z.shape)}")
    if log_sigma_e.shape[-1] != z.shape[1]:
        raise ValueError(f"log_sigma_e must have Z = {z.shape[1]} entries in its last dimension, got {tuple(log_sigma_e.shape)}")
    if variant == "slides":
        if not bool((log_sigma_e < 0).all()):
            raise ValueError("variant='slides' needs sigma_e < 1 in every latent dimension (sqrt(1 - sigma_e^2) "
                             f"must be real and positive); got max sigma_e = {float(log_sigma_e.exp().max()):.6g}")
        shrink = torch.sqrt(-torch.expm1(2 * log_sigma_e))          # sqrt(1 - sigma^2), accurate for sigma near 0 or 1
        return 0.5 * ((mu_e_xhat - shrink * z) * torch.exp(-log_sigma_e)).pow(2).sum(1)
    w = torch.softmax(-2 * log_sigma_e, dim=-1)                      # normalised precisions, sum_j w_j = 1
    return 0.5 * (w * (mu_e_xhat - z).pow(2)).sum(1)


def vae_loss(x: torch.Tensor, x_rec: torch.Tensor, mu: torch.Tensor, log_sigma_e: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
    """AVAE's encoder/decoder loss L_E = beta KL(N(mu, sigma_e^2) || N(0, I)) + 1/2 ||x - x_rec||^2, per example.

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
    kl = 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma_e) - 1 - 2 * log_sigma_e).sum(1)
    return beta * kl + 0.5 * (x - x_rec).flatten(1).pow(2).sum(1)


def generator_loss(c_fake: torch.Tensor, mu_e_xhat: torch.Tensor, z: torch.Tensor, log_sigma_e: torch.Tensor,
                   weight: float = 1.0, variant: str = "slides") -> torch.Tensor:
    """AVAE's generator loss, per example: softplus(-C(G(z, xi))) + weight * L_Z(G(z, xi)).

    c_fake: (B,) discriminator logits on the generated images; the adversarial term is the non-saturating
    -log sigmoid(C) (Goodfellow et al. 2014), paired with the logistic discriminator loss BCE(C(x), 1) + BCE(C(G), 0)
    (:func:`lib.asvae.discriminator_loss`). The reference notes write "-C(G(z, xi))"; whether the released code uses the
    raw logit or -log sigmoid is not recorded, and this is our choice. mu_e_xhat, z, log_sigma_e, variant: as in
    :func:`latent_reconstruction_loss`. weight: >= 0, the weight of L_Z. returns: (B,).
    raises ValueError for weight < 0, c_fake not (B,), and whatever :func:`latent_reconstruction_loss` raises.
    """
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    if c_fake.shape != z.shape[:1]:
        raise ValueError(f"c_fake must be (B,) = ({z.shape[0]},), got {tuple(c_fake.shape)}")
    return F.softplus(-c_fake) + weight * latent_reconstruction_loss(mu_e_xhat, z, log_sigma_e, variant)

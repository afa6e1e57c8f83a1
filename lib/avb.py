"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger, ICML 2017, arXiv:1701.04722).

The encoder is implicit, z = z_phi(x, eps). A discriminator T_psi(x, z) replaces the KL term:

* adversary (Eq. 3.3), maximised over psi:
  E_{q(x) q_phi(z|x)} log sigma(T(x, z)) + E_{q(x) p(z)} log(1 - sigma(T(x, z))),
  with optimum T*(x, z) = log q_phi(z|x) - log p(z) (Prop. 1), so E_{q_phi(z|x)} T* = KL(q_phi(z|x) || p(z));
* primal (Eq. 3.7), maximised over theta, phi with T held fixed (Prop. 2: E_q grad_phi T* = 0):
  E_{q(x)} E_eps [ -T(x, z_phi(x, eps)) + log p_theta(x | z_phi(x, eps)) ].

Both terms are per example (log p(x|z) summed over pixels), never a per-pixel mean against a
per-example T -- a known bug of several re-implementations.

Adaptive contrast (Sec. 4): contrast q_phi with r_alpha(z|x) = N(mu(x), diag sigma(x)^2) of matching
moments; T sees z~ = (z - mu)/sigma against N(0, I), and the KL estimate is
T(x, z~) + log r_alpha(z|x) - log p(z), with optimum T*_AC = log q_phi(z|x) - log r_alpha(z|x).

Registered as ``"avb"`` and ``"avb_ac"`` (:mod:`lib.registry`, family ``"nets"``).
"""
from __future__ import annotations

import math

import torch
import torch.distributions as D
import torch.nn.functional as F

from .method import EncoderDecoderMethod
from .nets import (Adversary, BernoulliDecoder, ImplicitEncoder, MomentEncoder, check_method_batch, explicit_decoder,
                   make_trunk, nets_options)
from .registry import register


def adversary_loss(t_posterior: torch.Tensor, t_prior: torch.Tensor) -> torch.Tensor:
    """Negative of AVB's adversary objective (Eq. 3.3), to be *minimised* over psi.

    t_posterior: (B,) T on pairs (x, z ~ q_phi(z|x)); t_prior: (B,) T on pairs (x, z ~ p(z)).
    returns: scalar -[mean log sigma(t_posterior) + mean log(1 - sigma(t_prior))], computed with
    ``softplus`` (log sigma(t) = -softplus(-t)), so it stays finite for saturated logits.
    """
    return F.softplus(-t_posterior).mean() + F.softplus(t_prior).mean()


class AVB(EncoderDecoderMethod):
    """AVB, optionally with adaptive contrast.

    encoder: :class:`~lib.nets.ImplicitEncoder` (plain AVB) or :class:`~lib.nets.MomentEncoder`
    (``adaptive_contrast=True``); decoder: :class:`~lib.nets.BernoulliDecoder`;
    adversary: :class:`~lib.nets.Adversary` T(x, z) -> (B,).
    Players: ``"adversary"`` (T) takes ``adversary_steps`` steps, then ``"primal"`` (encoder, decoder) one.
    """

    players = {"adversary": ("adversary",), "primal": ("encoder", "decoder")}
    critic_players = ("adversary",)
    elbo_implementation = "ELBO, KL estimated by the adversary T"

    def __init__(self, encoder, decoder: BernoulliDecoder, adversary: Adversary,
                 adaptive_contrast: bool = False, adversary_steps: int = 1):
        super().__init__()
        if adaptive_contrast and not isinstance(encoder, MomentEncoder):
            raise ValueError("adaptive_contrast=True needs a MomentEncoder (its moments are tractable)")
        if adversary_steps < 1:
            raise ValueError(f"adversary_steps must be >= 1, got {adversary_steps}")
        self.encoder, self.decoder, self.adversary = encoder, decoder, adversary
        self.adaptive_contrast, self.adversary_steps, self.z_dim = adaptive_contrast, adversary_steps, encoder.z_dim

    @property
    def schedule(self):
        return [("adversary", self.adversary_steps), ("primal", 1)]

    def codes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Posterior codes for x (B, *x_shape): ``z`` (B, Z), the adversary's input ``z_adv`` (z itself,
        or the standardised z~ under adaptive contrast) and, with AC, the detached ``mean``, ``std``."""
        if self.adaptive_contrast:
            z, mean, std = self.encoder.sample_with_moments(x)
            return {"z": z, "z_adv": (z - mean) / std, "mean": mean, "std": std}
        z = self.encoder.sample(x)
        return {"z": z, "z_adv": z}

    def kl_estimate(self, x: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
        """Adversarial estimate of KL(q_phi(z|x) || p(z)) at the sampled codes: (B,) nats."""
        t = self.adversary(x, c["z_adv"])
        if not self.adaptive_contrast:
            return t
        log_r = D.Normal(c["mean"], c["std"], validate_args=False).log_prob(c["z"]).sum(1)
        return t + log_r - self.prior(x.device).log_prob(c["z"])

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,) tensors: ``elbo = rec - kl`` with ``kl`` the adversary's estimate (nats).
        raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "AVB.elbo_terms")
        c = self.codes(x)
        rec = self.decoder.log_prob(x, c["z"])
        kl = self.kl_estimate(x, c)
        return {"elbo": rec - kl, "rec": rec, "kl": kl}

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "AVB.loss")
        if player == "adversary":
            with torch.no_grad():
                z_adv = self.codes(x)["z_adv"]
                z_prior = torch.randn_like(z_adv)  # p(z), or N(0, I) for z~ under adaptive contrast
            t_q, t_p = self.adversary(x, z_adv), self.adversary(x, z_prior)
            loss = adversary_loss(t_q, t_p)
            return {"loss": loss, "adversary_loss": loss.detach(), "T_posterior": t_q.mean().detach(),
                    "T_prior": t_p.mean().detach()}
        if player == "primal":
            t = self.elbo_terms(x)
            return {"loss": -t["elbo"].mean(), **{k: v.mean().detach() for k, v in t.items()}}
        self.player_parameters(player)  # raises KeyError naming the players


def _build(name: str, x_shape, z_dim: int, options: dict) -> AVB:
    o = nets_options(name, options)
    decoder = explicit_decoder(z_dim, x_shape, o)
    if name == "avb":
        encoder = ImplicitEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act, noise_dim=o.noise_dim), z_dim)
    else:
        encoder = MomentEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act), z_dim, n_basis=o.n_basis,
                                noise_dim=o.noise_dim)
    adversary = Adversary(math.prod(x_shape), z_dim, o.adversary_hidden, o.act, kind=o.adversary_kind)
    return AVB(encoder, decoder, adversary, adaptive_contrast=(name == "avb_ac"), adversary_steps=o.adversary_steps)


@register("avb", family="nets", summary="AVB: implicit encoder (noise at the input / each conv layer), adversary T")
def build_avb(*, x_shape, z_dim: int, **options) -> AVB:
    """AVB of :data:`lib.nets.NETS_OPTIONS` (arch, hidden, act, noise_dim, adversary_hidden, adversary_kind,
    adversary_steps; Bernoulli likelihood): the decoder, the implicit encoder (trunk, head), the adversary."""
    return _build("avb", x_shape, z_dim, options)


@register("avb_ac", family="nets", summary="AVB with adaptive contrast: moment-tractable encoder")
def build_avb_ac(*, x_shape, z_dim: int, **options) -> AVB:
    """AVB + AC of :data:`lib.nets.NETS_OPTIONS` (as ``"avb"``, and n_basis): the decoder, the moment encoder
    (trunk, head, noise networks), the adversary."""
    return _build("avb_ac", x_shape, z_dim, options)

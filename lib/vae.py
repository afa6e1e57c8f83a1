"""The baseline VAE (Kingma & Welling 2014): Gaussian q_phi(z|x), analytic KL, reparameterised ELBO.

ELBO(x) = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), in nats per example.
Registered as ``"vae"`` (:mod:`lib.registry`, family ``"nets"``).
"""
from __future__ import annotations

import torch
import torch.distributions as D

from .method import EncoderDecoderMethod
from .nets import BernoulliDecoder, GaussianEncoder, check_method_batch, explicit_decoder, make_trunk, nets_options
from .registry import register


class VAE(EncoderDecoderMethod):
    """encoder: :class:`GaussianEncoder`; decoder: :class:`BernoulliDecoder` (or :class:`~lib.nets.GaussianDecoder`).
    One player, ``"model"``; no critic."""

    players = {"model": ("encoder", "decoder")}
    critic_players = ()
    elbo_implementation = "ELBO, analytic KL"

    def __init__(self, encoder: GaussianEncoder, decoder: BernoulliDecoder):
        super().__init__()
        self.encoder, self.decoder, self.z_dim = encoder, decoder, encoder.z_dim

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, *x_shape) in [0, 1]. returns (B,) tensors ``elbo = rec - kl``, ``rec``, ``kl`` (nats);
        one reparameterised sample for ``rec``, the analytic KL (``torch.distributions``).
        raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "VAE.elbo_terms")
        q = self.encoder(x)
        z = q.rsample()
        rec = self.decoder.log_prob(x, z)
        kl = D.kl_divergence(q, self.prior(x.device))
        return {"elbo": rec - kl, "rec": rec, "kl": kl}

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The negative ELBO of :meth:`elbo_terms` on x (B, *x_shape): {"loss": -mean ELBO, "elbo", "rec", "kl"} in
        nats per example (Kingma & Welling 2014, Eq. 10). raises KeyError for a player other than "model", and what
        :meth:`elbo_terms` raises for x."""
        self.player_parameters(player)  # validates the name
        t = self.elbo_terms(x)
        return {"loss": -t["elbo"].mean(), **{k: v.mean().detach() for k, v in t.items()}}


@register("vae", family="nets", summary="VAE: Gaussian encoder, Bernoulli or Gaussian decoder, analytic KL")
def build_vae(*, x_shape, z_dim: int, **options) -> VAE:
    """The VAE of :data:`lib.nets.NETS_OPTIONS` (arch, hidden, act, likelihood, decoder_std; the others unused):
    the decoder first, then the encoder's trunk and head."""
    o = nets_options("vae", options, likelihoods=("bernoulli", "gaussian"))
    decoder = explicit_decoder(z_dim, x_shape, o)
    return VAE(GaussianEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act), z_dim), decoder)

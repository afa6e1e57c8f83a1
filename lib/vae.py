"""The baseline VAE (Kingma & Welling 2014): Gaussian q_phi(z|x), analytic KL, reparameterised ELBO.

ELBO(x) = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), in nats per example.
"""
from __future__ import annotations

import torch
import torch.distributions as D

from .method import Method
from .nets import BernoulliDecoder, GaussianEncoder, check_method_batch, standard_normal_prior


class VAE(Method):
    """encoder: :class:`GaussianEncoder`; decoder: :class:`BernoulliDecoder`. One player, ``"model"``."""

    players = {"model": ("encoder", "decoder")}

    def __init__(self, encoder: GaussianEncoder, decoder: BernoulliDecoder):
        super().__init__()
        self.encoder, self.decoder, self.z_dim = encoder, decoder, encoder.z_dim

    def prior(self, device=None) -> D.Independent:
        return standard_normal_prior(self.z_dim, device or next(self.parameters()).device)

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
        self.player_parameters(player)  # validates the name
        t = self.elbo_terms(x)
        return {"loss": -t["elbo"].mean(), **{k: v.mean().detach() for k, v in t.items()}}

    def sample_posterior(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.sample(x)

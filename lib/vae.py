"""The baseline VAEs: Gaussian q_phi(z|x) with the analytic KL (Kingma & Welling 2014), and a planar-flow q_phi(z|x)
with a Monte Carlo KL (Rezende & Mohamed 2015), each trained by the reparameterised ELBO

ELBO(x) = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)), in nats per example.

Registered as ``"vae"`` and ``"flow_vae"`` (:mod:`lib.registry`, family ``"nets"``).
"""
from __future__ import annotations

import torch
import torch.distributions as D

from .flows import PlanarFlowEncoder
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
        nats per example (Kingma & Welling 2014, Eq. 10). raises KeyError for a player other than the method's one
        player (``"model"``; :class:`FlowVAE`: ``"primal"``), and what :meth:`elbo_terms` raises for x."""
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


class FlowVAE(VAE):
    """A VAE whose q_phi(z|x) is a planar normalizing flow (Rezende & Mohamed, ICML 2015): the baseline "normalizing
    flow (k = 80), 85.1 nats" of Pu et al. 2017, Table 1, against which AS-VAE (:mod:`lib.asvae`) is compared.

    encoder: :class:`~lib.flows.PlanarFlowEncoder` (AS-VAE's); decoder: :class:`~lib.nets.BernoulliDecoder` (or
    :class:`~lib.nets.GaussianDecoder`). Trained by the ELBO with the KL term estimated at the flow's own sample
    (Rezende & Mohamed 2015, Eq. 15): E_q[log p(x|z_K)] - E_q[log q_phi(z_K|x) - log p(z_K)], where
    log q_phi(z_K|x) = log q_0(z_0|x) - sum_k log|1 + u_k . psi_k(z_{k-1})| is exact. One player, ``"primal"`` (named
    as AS-VAE's, so the two share one learning-rate setting); no critic. Importance proposals: the encoder's (IWAE:
    the flow itself; AIS: a Gaussian fitted to it).
    """

    players = {"primal": ("encoder", "decoder")}
    critic_players = ()
    elbo_implementation = "ELBO, KL by one Monte Carlo sample of the encoder's exact density"

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, *x_shape). returns (B,) tensors ``elbo = rec - kl``, ``rec = log p(x|z)`` and
        ``kl = log q_phi(z|x) - log p(z)`` (nats) at one reparameterised z ~ q_phi(z|x), the flow's output: an unbiased
        one-sample estimate of each term (the same estimator as :meth:`lib.asvae.ASVAE.elbo_terms`).
        raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "FlowVAE.elbo_terms")
        z, log_q = self.encoder.sample_and_log_prob(x)
        rec = self.decoder.log_prob(x, z)
        kl = log_q - self.prior(x.device).log_prob(z)
        return {"elbo": rec - kl, "rec": rec, "kl": kl}


@register("flow_vae", family="nets",
          summary="VAE with AS-VAE's planar-flow encoder, Monte Carlo KL (Rezende & Mohamed 2015)")
def build_flow_vae(*, x_shape, z_dim: int, **options) -> FlowVAE:
    """The flow VAE of :data:`lib.nets.NETS_OPTIONS` (arch, hidden, act, n_flows, likelihood, decoder_std; the others
    unused): the decoder, then the planar-flow encoder (trunk, head), in the order of :func:`lib.asvae._build`, so
    that with the same seed both start from the same decoder and encoder weights as AS-VAE's (tested)."""
    o = nets_options("flow_vae", options, likelihoods=("bernoulli", "gaussian"))
    decoder = explicit_decoder(z_dim, x_shape, o)
    return FlowVAE(PlanarFlowEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act), z_dim, n_flows=o.n_flows), decoder)

"""Adversarial Symmetric VAE (Pu, Wang, Henao, Chen, Gan, Li & Carin, NIPS 2017, arXiv:1711.04915).

Two variational expressions, symmetric in data x and codes z (docs/papers.md §2):

* L_x = E_{q(x)} log p_theta(x) - KL(q_phi(x,z) || p_theta(x,z))   (Eq. 8)
* L_z = E_{p(z)} log q_phi(z)  - KL(p_theta(x,z) || q_phi(x,z))   (Eq. 9)

Neither is computable, because q(x) and q_phi(z) have no density. Two logistic discriminators
(Lemma 1: the optimum of E_P log sigma(f) + E_Q log(1 - sigma(f)) is f* = log P - log Q) supply them:

* f_psi1 contrasts q_phi(x,z) (data x with its code z ~ q_phi(z|x)) against p_theta(x) p(z)
  (a generated x with an *independent* prior z): f*_psi1 = log q_phi(x,z) - log p_theta(x) - log p(z);
* f_psi2 contrasts p_theta(x,z) (prior z with its generated x) against q(x) q_phi(z)
  (data x with the code of a *different* data point): f*_psi2 = log p_theta(x,z) - log q(x) - log q_phi(z).

Then exactly L_x = E_{q_phi(x,z)}[log p_theta(x|z) - f*_psi1] and L_z = E_{p_theta(x,z)}[log q_phi(z|x) - f*_psi2],
and the primal maximises (Eq. 11) E_{q(x),eps}[log p_theta(x|z_eps) - f_psi1(x, z_eps)]
+ E_{p(z),xi}[log q_phi(z|x_xi) - f_psi2(x_xi, z)] with the discriminators held fixed.
Variants: AS-VAE-r keeps only the first half, AS-VAE-g only the second, AS-VAE both. The discriminators' logistic
loss is :func:`lib.losses.discriminator_loss`. Registered as ``"asvae"``, ``"asvae_r"``, ``"asvae_g"``
(:mod:`lib.registry`, family ``"nets"``).
"""
from __future__ import annotations

import math

import torch

from .flows import PlanarFlowEncoder
from .losses import discriminator_loss
from .method import EncoderDecoderMethod
from .nets import Adversary, check_method_batch, explicit_decoder, make_trunk, nets_options
from .registry import register


class ASVAE(EncoderDecoderMethod):
    """AS-VAE and its variants ``"r"`` (L_x only) and ``"g"`` (L_z only).

    encoder: q_phi(z|x) with ``sample``, ``sample_and_log_prob(x)`` and ``log_prob(z, x)`` -- an explicit
    density at any z, e.g. :class:`~lib.flows.PlanarFlowEncoder` (MNIST) or :class:`~lib.nets.GaussianEncoder`.
    decoder: p_theta(x|z) with ``log_prob(x, z)`` and a reparameterised ``rsample(z)`` (Bernoulli: straight-through).
    f_psi1, f_psi2: discriminators f(x, z) -> (B,) logits (same architecture, separate parameters).
    Players: ``"discriminators"`` (both f, ``discriminator_steps`` steps), then ``"primal"`` (encoder, decoder).
    raises ValueError for an unknown variant or discriminator_steps < 1.
    """

    players = {"discriminators": ("f_psi1", "f_psi2"), "primal": ("encoder", "decoder")}
    critic_players = ("discriminators",)
    VARIANTS = ("full", "r", "g")
    elbo_implementation = "ELBO, KL by one Monte Carlo sample of the encoder's exact density"

    def __init__(self, encoder, decoder, f_psi1, f_psi2, variant: str = "full", discriminator_steps: int = 1):
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"unknown AS-VAE variant {variant!r}: use one of {self.VARIANTS}")
        if discriminator_steps < 1:
            raise ValueError(f"discriminator_steps must be >= 1, got {discriminator_steps}")
        self.encoder, self.decoder, self.f_psi1, self.f_psi2 = encoder, decoder, f_psi1, f_psi2
        self.variant, self.discriminator_steps, self.z_dim = variant, discriminator_steps, encoder.z_dim
        self.use_x, self.use_z = variant in ("full", "r"), variant in ("full", "g")

    @property
    def schedule(self):
        return [("discriminators", self.discriminator_steps), ("primal", 1)]

    @torch.no_grad()
    def discriminator_samples(self, x: torch.Tensor) -> dict[str, tuple]:
        """Positive and negative pairs for each discriminator in use, from a data batch x (B, *x_shape).

        ``"psi1"``: positives (x, z ~ q_phi(z|x)); negatives (x' ~ p_theta(x), z ~ p(z) drawn independently of x').
        ``"psi2"``: positives (x' ~ p_theta(x|z), z ~ p(z)); negatives (x, the code of another data point:
        the posterior codes rolled by one place in the batch, a sample of q(x) q_phi(z)).
        returns: {"psi1": ((x_pos, z_pos), (x_neg, z_neg)), "psi2": ...}.
        """
        B, prior = x.shape[0], self.prior(x.device)
        out = {}
        z_q = self.encoder.sample(x)
        if self.use_x:
            x_gen = self.decoder.rsample(prior.sample((B,)))
            out["psi1"] = ((x, z_q), (x_gen, prior.sample((B,))))
        if self.use_z:
            z_p = prior.sample((B,))
            out["psi2"] = ((self.decoder.rsample(z_p), z_p), (x, z_q.roll(1, dims=0)))
        return out

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The plain VAE bound of the trained model (the paper's NLL estimator is its negative):
        (B,) ``elbo = rec - kl`` with ``kl = log q_phi(z|x) - log p(z)`` at one z ~ q_phi(z|x), nats."""
        check_method_batch(self, x, "ASVAE.elbo_terms")
        z, log_q = self.encoder.sample_and_log_prob(x)
        rec = self.decoder.log_prob(x, z)
        kl = log_q - self.prior(x.device).log_prob(z)
        return {"elbo": rec - kl, "rec": rec, "kl": kl}

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "ASVAE.loss")
        if player == "discriminators":
            out, loss = {}, 0.0
            for name, ((xp, zp), (xn, zn)) in self.discriminator_samples(x).items():
                f = getattr(self, "f_" + name)
                f_pos, f_neg = f(xp, zp), f(xn, zn)
                term = discriminator_loss(f_pos, f_neg)
                loss = loss + term
                out.update({f"{name}_loss": term.detach(), f"{name}_pos": f_pos.mean().detach(),
                            f"{name}_neg": f_neg.mean().detach()})
            return {"loss": loss, **out}
        if player == "primal":
            out, objective = {}, 0.0
            if self.use_x:  # L_x estimate: E_{q(x), eps}[log p(x | z_eps) - f_psi1(x, z_eps)]
                z = self.encoder.sample(x)
                rec, f1 = self.decoder.log_prob(x, z), self.f_psi1(x, z)
                objective = objective + (rec - f1).mean()
                out.update(rec=rec.mean().detach(), f_psi1=f1.mean().detach(), L_x=(rec - f1).mean().detach())
            if self.use_z:  # L_z estimate: E_{p(z), xi}[log q(z | x_xi) - f_psi2(x_xi, z)]
                z = self.prior(x.device).sample((x.shape[0],))
                x_xi = self.decoder.rsample(z)
                log_q, f2 = self.encoder.log_prob(z, x_xi), self.f_psi2(x_xi, z)
                objective = objective + (log_q - f2).mean()
                out.update(log_q_gen=log_q.mean().detach(), f_psi2=f2.mean().detach(), L_z=(log_q - f2).mean().detach())
            return {"loss": -objective, **out}
        self.player_parameters(player)  # raises KeyError naming the players


def _build(name: str, variant: str, x_shape, z_dim: int, options: dict) -> ASVAE:
    """AS-VAE (``variant``) of :data:`lib.nets.NETS_OPTIONS` (arch, hidden, act, n_flows, adversary_hidden,
    adversary_kind, adversary_steps as the discriminators' steps, likelihood, decoder_std): the decoder, the
    planar-flow encoder (trunk, head), then f_psi1 and f_psi2."""
    o = nets_options(name, options, likelihoods=("bernoulli", "gaussian"))
    decoder = explicit_decoder(z_dim, x_shape, o)
    encoder = PlanarFlowEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act), z_dim, n_flows=o.n_flows)
    # The paper's two discriminators: one architecture, separate parameters, no analytic terms. (Giving f_psi1
    # AVB's analytic -log p(z) = ||z||^2 / 2 was tried: at quick scale AS-VAE-r then reconstructed worse,
    # -log p(x|z) 122 vs 78 nats, so we keep the paper's form.)
    f1, f2 = (Adversary(math.prod(x_shape), z_dim, o.adversary_hidden, o.act, kind=o.adversary_kind,
                        analytic_prior=False) for _ in range(2))
    return ASVAE(encoder, decoder, f1, f2, variant=variant, discriminator_steps=o.adversary_steps)


@register("asvae", family="nets", summary="AS-VAE: planar-flow encoder, two discriminators (L_x + L_z)")
def build_asvae(*, x_shape, z_dim: int, **options) -> ASVAE:
    """AS-VAE, both halves (variant ``"full"``); options and construction order: :func:`_build`."""
    return _build("asvae", "full", x_shape, z_dim, options)


@register("asvae_r", family="nets", summary="AS-VAE-r: the reconstruction half L_x only")
def build_asvae_r(*, x_shape, z_dim: int, **options) -> ASVAE:
    """AS-VAE-r (variant ``"r"``); options and construction order: :func:`_build`."""
    return _build("asvae_r", "r", x_shape, z_dim, options)


@register("asvae_g", family="nets", summary="AS-VAE-g: the generation half L_z only")
def build_asvae_g(*, x_shape, z_dim: int, **options) -> ASVAE:
    """AS-VAE-g (variant ``"g"``); options and construction order: :func:`_build`."""
    return _build("asvae_g", "g", x_shape, z_dim, options)

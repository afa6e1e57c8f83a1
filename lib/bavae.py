"""Biadversarial VAE (Fickinger, arXiv:1902.03517): both Gaussian assumptions replaced by f-GAN KL games.

The paper has no experiments and its released code is an unfinished stub; this module follows the
text (docs/papers.md §3). Both games use the f-GAN variational bound of the KL divergence
(Nowozin et al. 2016, f(u) = u log u, conjugate f*(t) = e^{t-1}):

    KL(P || Q) = max_T  E_P T - E_Q e^{T - 1},   optimum T* = 1 + log P/Q   (:func:`lib.losses.kl_fgan_objective`)

* inference game (reverse KL, replaces the Gaussian posterior), T_psi(x, z):
  V_I = E_{q(x)} [E_{q_phi(z|x)} T - E_{p(z)} e^{T - 1}],  T* = 1 + log q_phi(z|x) - log p(z),
  max_psi V_I = E_{q(x)} KL(q_phi(z|x) || p(z));
* generative game (direct KL, replaces the Gaussian likelihood), D_omega(x, z):
  V_G = E_{q(x) q_phi(z|x)} D - E_{q_phi(z) p_theta(x|z)} e^{D - 1},  D* = 1 + log q_phi(x|z) - log p_theta(x|z),
  max_omega V_G = E_{q_phi(z)} KL(q_phi(x|z) || p_theta(x|z)),

with the full game min_{theta, phi} max_{psi, omega} V_G + V_I.

**The entropy term.** E_{q_phi(x,z)} log p_theta(x|z) = -E_{q_phi(z)} KL(q_phi(x|z) || p_theta(x|z)) - E_{q_phi(z)} H(q_phi(x|z)).
The entropy does not depend on theta, so the decoder's gradient of V_G is the ELBO's. It does depend on phi:
E H(q_phi(x|z)) = H(q(x)) - I_q(x; z), so max(V_G) + max(V_I) = -ELBO + I_q(x; z) - H(q(x)), and the paper's game
charges the encoder for the information its codes carry about x (with an implicit decoder, complete posterior
collapse -- codes ignored, the decoder a plain generator -- is a global optimum). ``entropy="dropped"`` plays the
paper's game as written. ``entropy="restored"`` keeps the ELBO exactly: since
E_{q(x)} KL(q_phi(z|x) || p(z)) - I_q(x; z) = KL(q_phi(z) || p(z)), the ELBO is -H(q(x)) - E KL(q_phi(x|z) || p_theta(x|z))
- KL(q_phi(z) || p(z)), and the encoder plays the generative game plus a third KL game on codes alone,
V_M = E_{q_phi(z)} S(z) - E_{p(z)} e^{S(z) - 1} with S* = 1 + log q_phi(z) - log p(z); T_psi is still trained
and reports E KL(q_phi(z|x) || p(z)), but the encoder's gradient does not use it.

Registered as ``"bavae"`` and ``"bavae_h"`` (:mod:`lib.registry`, family ``"nets"``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses import kl_fgan_objective
from .method import EncoderDecoderMethod
from .nets import (Adversary, CodeDiscriminator, ImplicitDecoder, ImplicitEncoder, check_method_batch, make_trunk,
                   nets_options)
from .registry import register


def bounded(v: torch.Tensor, t_max: float) -> torch.Tensor:
    """Soft upper bound t_max - softplus(t_max - v) (~ v well below t_max, never above it): the discriminators' output
    activation. A KL discriminator must stay bounded: where P/Q is unbounded (disjoint supports, a narrow posterior
    against the prior) the unconstrained maximiser of E_P T - E_Q e^{T-1} runs to +infinity, and one sample of Q that
    then lands there makes e^{T-1} overflow. Restricting T to T <= t_max keeps a valid lower bound on the KL (the
    pointwise optimum becomes min(1 + log P/Q, t_max)) and caps e^{T-1} at e^{t_max - 1}.
    v: raw discriminator outputs, any shape (nats); returns: the same shape, every entry <= t_max (< t_max in exact
    arithmetic; in floating point softplus(t_max - v) underflows to 0 once v exceeds t_max by a few tens, e.g.
    ``bounded(30., 10.)`` is exactly 10.0 in float32)."""
    return t_max - F.softplus(t_max - v)


class BAVAE(EncoderDecoderMethod):
    """The Biadversarial VAE.

    encoder: implicit z = f_phi(x, eps), with ``sample(x)`` (e.g. :class:`~lib.nets.ImplicitEncoder`).
    decoder: implicit x = g_theta(z, xi), with a reparameterised ``sample(z)`` (e.g. :class:`~lib.nets.ImplicitDecoder`);
    no density is ever evaluated.
    T_psi: inference discriminator T(x, z) -> (B,); D_omega: generative discriminator D(x, z) -> (B,);
    S_chi: code discriminator S(z) -> (B,) (``entropy="restored"`` only; None otherwise).
    t_max: the discriminators' output bound (:func:`bounded`).
    generator_loss: ``"minimax"`` (the paper: the primal minimises V_G itself) or ``"nonsaturating"`` (f-GAN's practical
    variant, Nowozin et al. 2016, Sec. 3.2: on generated pairs the primal maximises E D instead of E e^{D-1}; same fixed point,
    but the gradient is not scaled by e^{D-1}, which vanishes where the discriminator rejects the samples).
    Players: ``"discriminators"`` (every discriminator, ``discriminator_steps`` steps), then ``"primal"`` (encoder,
    decoder). raises ValueError for an unknown ``entropy`` or ``generator_loss``, a missing S_chi, or t_max <= 1.
    """

    players = {"discriminators": ("T_psi", "D_omega"), "primal": ("encoder", "decoder")}
    critic_players = ("discriminators",)
    ENTROPY = ("dropped", "restored")

    GENERATOR_LOSS = ("minimax", "nonsaturating")

    def __init__(self, encoder, decoder, T_psi, D_omega, S_chi=None, entropy: str = "dropped",
                 discriminator_steps: int = 1, t_max: float = 10.0, generator_loss: str = "minimax"):
        super().__init__()
        if entropy not in self.ENTROPY:
            raise ValueError(f"unknown entropy treatment {entropy!r}: use one of {self.ENTROPY}")
        if (entropy == "restored") != (S_chi is not None):
            raise ValueError("entropy='restored' needs the code discriminator S_chi, and 'dropped' takes none")
        if discriminator_steps < 1:
            raise ValueError(f"discriminator_steps must be >= 1, got {discriminator_steps}")
        if generator_loss not in self.GENERATOR_LOSS:
            raise ValueError(f"unknown generator_loss {generator_loss!r}: use one of {self.GENERATOR_LOSS}")
        self.generator_loss = generator_loss
        if not t_max > 1:
            raise ValueError(f"t_max must be > 1 (T* = 1 where P = Q), got {t_max}")
        self.t_max = float(t_max)
        self.encoder, self.decoder, self.T_psi, self.D_omega, self.S_chi = encoder, decoder, T_psi, D_omega, S_chi
        self.entropy, self.discriminator_steps, self.z_dim = entropy, discriminator_steps, encoder.z_dim
        if S_chi is not None:
            self.players = {"discriminators": ("T_psi", "D_omega", "S_chi"), "primal": ("encoder", "decoder")}

    @property
    def schedule(self):
        return [("discriminators", self.discriminator_steps), ("primal", 1)]

    def T(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Inference discriminator, bounded: (B,)."""
        return bounded(self.T_psi(x, z), self.t_max)

    def D(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Generative discriminator, bounded: (B,)."""
        return bounded(self.D_omega(x, z), self.t_max)

    def S(self, z: torch.Tensor) -> torch.Tensor:
        """Code discriminator, bounded: (B,)."""
        return bounded(self.S_chi(z), self.t_max)

    def game_samples(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every sample the games need, from a data batch x (B, *x_shape), differentiable in (theta, phi):
        ``z_q`` (B, Z) ~ q_phi(z|x); ``z_p`` (B, Z) ~ p(z); ``z_agg`` (B, Z) ~ q_phi(z) (the codes of *other* data points:
        z_q rolled by one place, so x and z_agg are independent); ``x_gen`` (B, *x_shape) ~ p_theta(x|z_agg)."""
        z_q = self.encoder.sample(x)
        z_agg = z_q.roll(1, dims=0)
        return {"z_q": z_q, "z_p": self.prior(x.device).sample((x.shape[0],)), "z_agg": z_agg,
                "x_gen": self.decoder.sample(z_agg)}

    def game_values(self, x: torch.Tensor, s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar estimates of V_I, V_G (and V_M) on one batch (nats per example), and the discriminators' mean
        outputs on their positive and negative samples (``T_pos``, ``T_neg``, ``D_pos``, ``D_neg``, ...)."""
        t = {"T": (self.T(x, s["z_q"]), self.T(x, s["z_p"])),
             "D": (self.D(x, s["z_q"]), self.D(s["x_gen"], s["z_agg"]))}
        if self.S_chi is not None:
            t["S"] = (self.S(s["z_agg"]), self.S(s["z_p"]))
        out = {"V_" + {"T": "I", "D": "G", "S": "M"}[k]: kl_fgan_objective(pos, neg) for k, (pos, neg) in t.items()}
        for k, (pos, neg) in t.items():
            out[f"{k}_pos"], out[f"{k}_neg"] = pos.mean().detach(), neg.mean().detach()
        return out

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_method_batch(self, x, "BAVAE.loss")
        if player == "discriminators":  # maximise every game value at fixed samples
            with torch.no_grad():
                s = self.game_samples(x)
            v = self.game_values(x, s)
            return {"loss": -sum(t for k, t in v.items() if k.startswith("V_")), **{k: t.detach() for k, t in v.items()}}
        if player == "primal":  # minimise V_G + V_I (paper) or V_G + V_M (entropy restored), discriminators fixed
            s = self.game_samples(x)
            v = self.game_values(x, s)
            loss = v["V_G"] + (v["V_I"] if self.entropy == "dropped" else v["V_M"])
            if self.generator_loss == "nonsaturating":  # -E_Q e^{D-1} -> -E_Q D on the generated pairs
                d_neg = self.D(s["x_gen"], s["z_agg"])
                loss = loss + torch.exp(d_neg - 1).mean() - d_neg.mean()
            return {"loss": loss, **{k: t.detach() for k, t in v.items()}}
        self.player_parameters(player)  # raises KeyError naming the players


def _build(name: str, x_shape, z_dim: int, options: dict) -> BAVAE:
    """BAVAE of :data:`lib.nets.NETS_OPTIONS` (arch, hidden, act, noise_dim, decoder_noise_dim, adversary_hidden,
    adversary_kind, adversary_steps as the discriminators' steps, t_max, generator_loss; Bernoulli likelihood only, as
    the decoder is implicit): the implicit encoder (trunk, head), the implicit decoder, T_psi, D_omega and, for
    ``"bavae_h"``, the code discriminator S_chi (entropy restored)."""
    o = nets_options(name, options)
    encoder = ImplicitEncoder(make_trunk(o.arch, x_shape, o.hidden, o.act, noise_dim=o.noise_dim), z_dim)
    decoder = ImplicitDecoder(z_dim, x_shape, arch=o.arch, hidden=tuple(reversed(o.hidden)), act=o.act,
                              noise_dim=o.decoder_noise_dim)
    # No analytic ||z||^2/2 in T (unlike AVB's adversary): E_{p(z)} e^{T - 1} would be infinite.
    T = Adversary(math.prod(x_shape), z_dim, o.adversary_hidden, o.act, kind=o.adversary_kind, analytic_prior=False)
    Dw = Adversary(math.prod(x_shape), z_dim, o.adversary_hidden, o.act, kind=o.adversary_kind, analytic_prior=False)
    S = CodeDiscriminator(z_dim, o.adversary_hidden, o.act) if name == "bavae_h" else None
    return BAVAE(encoder, decoder, T, Dw, S, entropy="restored" if S is not None else "dropped",
                 discriminator_steps=o.adversary_steps, t_max=o.t_max, generator_loss=o.generator_loss)


@register("bavae", family="nets", summary="BAVAE: implicit encoder and decoder, two f-GAN KL games (the paper's)")
def build_bavae(*, x_shape, z_dim: int, **options) -> BAVAE:
    """BAVAE as the paper writes it (entropy term dropped); options and construction order: :func:`_build`."""
    return _build("bavae", x_shape, z_dim, options)


@register("bavae_h", family="nets", summary="BAVAE-H: BAVAE with the entropy term restored (code discriminator)")
def build_bavae_h(*, x_shape, z_dim: int, **options) -> BAVAE:
    """BAVAE-H (entropy restored by a code discriminator S_chi); options and construction order: :func:`_build`."""
    return _build("bavae_h", x_shape, z_dim, options)

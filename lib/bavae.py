"""Biadversarial VAE (Fickinger, arXiv:1902.03517): both Gaussian assumptions replaced by f-GAN KL games.

The paper has no experiments and its released code is an unfinished stub; this module follows the
text (REFERENCE.md Sec. 3). Both games use the f-GAN variational bound of the KL divergence
(Nowozin et al. 2016, f(u) = u log u, conjugate f*(t) = e^{t-1}):

    KL(P || Q) = max_T  E_P T - E_Q e^{T - 1},   optimum T* = 1 + log P/Q        (:func:`kl_fgan_objective`)

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
"""
from __future__ import annotations

import torch
import torch.distributions as D
import torch.nn.functional as F

from .method import Method
from .nets import check_method_batch, standard_normal_prior


def _check_weights(t: torch.Tensor, w: torch.Tensor | None, t_name: str, w_name: str) -> None:
    if w is not None and w.shape != t.shape:
        raise ValueError(f"{w_name} must have the shape of {t_name}, {tuple(t.shape)}, got {tuple(w.shape)}")


def kl_fgan_objective(t_p: torch.Tensor, t_q: torch.Tensor, w_p: torch.Tensor | None = None,
                      w_q: torch.Tensor | None = None) -> torch.Tensor:
    """The f-GAN variational lower bound on KL(P || Q): E_P T - E_Q e^{T - 1} (Nowozin et al. 2016, Eq. 4 with
    f(u) = u log u; Fickinger 2019, Eqs. 6 and 14).

    t_p: (N,) T on samples (or support points) of P; t_q: (M,) T on samples of Q. w_p, w_q: optional weights, e.g.
    exact probabilities of a discrete toy or quadrature weights (each should sum to 1); without them the means
    are used. returns: scalar in nats. Its maximiser over T is T* = 1 + log P/Q, where it equals KL(P || Q);
    any other T gives less. Keep T bounded above (:func:`bounded`) wherever P/Q may be unbounded.
    raises ValueError if a weight tensor's shape differs from its T's (it would broadcast silently).
    """
    _check_weights(t_p, w_p, "t_p", "w_p")
    _check_weights(t_q, w_q, "t_q", "w_q")
    e = torch.exp(t_q - 1)
    ep = t_p.mean() if w_p is None else (w_p * t_p).sum()
    eq = e.mean() if w_q is None else (w_q * e).sum()
    return ep - eq


def bounded(v: torch.Tensor, t_max: float) -> torch.Tensor:
    """Soft upper bound t_max - softplus(t_max - v) (~ v well below t_max, never above it): the discriminators' output
    activation. A KL discriminator must stay bounded: where P/Q is unbounded (disjoint supports, a narrow posterior
    against the prior) the unconstrained maximiser of E_P T - E_Q e^{T-1} runs to +infinity, and one sample of Q that
    then lands there makes e^{T-1} overflow. Restricting T to T <= t_max keeps a valid lower bound on the KL (the
    pointwise optimum becomes min(1 + log P/Q, t_max)) and caps e^{T-1} at e^{t_max - 1}.
    v: raw discriminator outputs, any shape (nats); returns: the same shape, every entry < t_max."""
    return t_max - F.softplus(t_max - v)


class BAVAE(Method):
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

    def prior(self, device=None) -> D.Independent:
        return standard_normal_prior(self.z_dim, device or next(self.parameters()).device)

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

    def sample_posterior(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.sample(x)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """One decoder sample x ~ p_theta(x | z), z ~ q_phi(z|x): (B, *x_shape) (an implicit decoder has no mean image)."""
        return self.decoder.sample(self.encoder.sample(x))

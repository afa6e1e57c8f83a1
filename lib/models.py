"""Build a method and its networks from a plain config (the notebooks' and the runner's entry point).

>>> build_method("avb", x_shape=(1, 28, 28), z_dim=8, arch="mlp")   # doctest: +SKIP
"""
from __future__ import annotations

import math

from .asvae import ASVAE
from .bavae import BAVAE
from .avb import AVB
from .flows import PlanarFlowEncoder
from .nets import (Adversary, BernoulliDecoder, CodeDiscriminator, GaussianDecoder, GaussianEncoder, ImplicitDecoder,
                   ImplicitEncoder, MomentEncoder, make_trunk)
from .vae import VAE

METHODS = ("vae", "avb", "avb_ac", "asvae", "asvae_r", "asvae_g", "bavae", "bavae_h")


def build_method(method: str, *, x_shape, z_dim: int, arch: str = "mlp", hidden=(512, 512), act: str = "elu",
                 noise_dim: int = 32, adversary_hidden=(512, 512), adversary_kind: str = "concat",
                 adversary_steps: int = 1, n_basis: int = 8, n_flows: int = 8, likelihood: str = "bernoulli",
                 decoder_std: float | None = None, decoder_noise_dim: int = 16, t_max: float = 10.0,
                 generator_loss: str = "minimax"):
    """method: ``"vae"`` (Gaussian encoder), ``"avb"`` (implicit encoder, noise at the input / at every
    conv layer), ``"avb_ac"`` (AVB with adaptive contrast, moment-tractable encoder).
    ``"asvae"``, ``"asvae_r"``, ``"asvae_g"`` (AS-VAE and its reconstruction- / generation-only variants:
    planar-flow encoder with ``n_flows`` layers, two discriminators of the adversary's architecture).
    arch: ``"mlp"``, ``"conv"`` (28x28) or ``"conv32"`` ((3, 32, 32)) for encoder and decoder.
    ``"bavae"``, ``"bavae_h"`` (Biadversarial VAE: implicit encoder and implicit decoder x = g(z, xi) with
    ``decoder_noise_dim`` noise inputs, inference and generative discriminators on (x, z); ``"bavae_h"`` restores the
    encoder's entropy term with a code discriminator; ``t_max``: the discriminators' output bound; ``generator_loss``: ``"minimax"`` or ``"nonsaturating"``;
    see :mod:`lib.bavae`).
    likelihood: ``"bernoulli"`` (binary pixels) or ``"gaussian"`` (VAE and AS-VAE; ``decoder_std``: a fixed scale, the
    L2 baseline; None: learned per pixel). x_shape: e.g. (1, 28, 28) or (4,).
    raises ValueError for an unknown method (naming the known ones), likelihood or architecture.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if likelihood not in ("bernoulli", "gaussian"):
        raise ValueError(f"unknown likelihood {likelihood!r}: use 'bernoulli' or 'gaussian'")
    if likelihood == "gaussian" and not (method == "vae" or method.startswith("asvae")):
        raise ValueError(f"likelihood='gaussian' is implemented for the VAE and AS-VAE methods only, not {method!r}")
    dec_hidden = tuple(reversed(hidden))
    if method.startswith("bavae"):
        encoder = ImplicitEncoder(make_trunk(arch, x_shape, hidden, act, noise_dim=noise_dim), z_dim)
        decoder = ImplicitDecoder(z_dim, x_shape, arch=arch, hidden=dec_hidden, act=act, noise_dim=decoder_noise_dim)
        # No analytic ||z||^2/2 in T (unlike AVB's adversary): E_{p(z)} e^{T - 1} would be infinite.
        T = Adversary(math.prod(x_shape), z_dim, adversary_hidden, act, kind=adversary_kind, analytic_prior=False)
        Dw = Adversary(math.prod(x_shape), z_dim, adversary_hidden, act, kind=adversary_kind, analytic_prior=False)
        S = CodeDiscriminator(z_dim, adversary_hidden, act) if method == "bavae_h" else None
        return BAVAE(encoder, decoder, T, Dw, S, entropy="restored" if S is not None else "dropped",
                     discriminator_steps=adversary_steps, t_max=t_max,
                     generator_loss=generator_loss)
    if likelihood == "gaussian":
        decoder = GaussianDecoder(z_dim, x_shape, arch=arch, hidden=dec_hidden, act=act, std=decoder_std)
    else:
        decoder = BernoulliDecoder(z_dim, x_shape, arch=arch, hidden=dec_hidden, act=act)
    if method == "vae":
        return VAE(GaussianEncoder(make_trunk(arch, x_shape, hidden, act), z_dim), decoder)
    if method.startswith("asvae"):
        encoder = PlanarFlowEncoder(make_trunk(arch, x_shape, hidden, act), z_dim, n_flows=n_flows)
        # The paper's two discriminators: one architecture, separate parameters, no analytic terms. (Giving f_psi1
        # AVB's analytic -log p(z) = ||z||^2 / 2 was tried: at quick scale AS-VAE-r then reconstructed worse,
        # -log p(x|z) 122 vs 78 nats, so we keep the paper's form.)
        f1, f2 = (Adversary(math.prod(x_shape), z_dim, adversary_hidden, act, kind=adversary_kind, analytic_prior=False)
                  for _ in range(2))
        variant = {"asvae": "full", "asvae_r": "r", "asvae_g": "g"}[method]
        return ASVAE(encoder, decoder, f1, f2, variant=variant, discriminator_steps=adversary_steps)
    if method == "avb":
        encoder = ImplicitEncoder(make_trunk(arch, x_shape, hidden, act, noise_dim=noise_dim), z_dim)
    else:
        encoder = MomentEncoder(make_trunk(arch, x_shape, hidden, act), z_dim, n_basis=n_basis, noise_dim=noise_dim)
    adversary = Adversary(math.prod(x_shape), z_dim, adversary_hidden, act, kind=adversary_kind)
    return AVB(encoder, decoder, adversary, adaptive_contrast=(method == "avb_ac"), adversary_steps=adversary_steps)

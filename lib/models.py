"""Build a method and its networks from a plain config (the notebooks' and the runner's entry point).

>>> build_method("avb", x_shape=(1, 28, 28), z_dim=8, arch="mlp")   # doctest: +SKIP
"""
from __future__ import annotations

import math

from .asvae import ASVAE
from .avb import AVB
from .flows import PlanarFlowEncoder
from .nets import Adversary, BernoulliDecoder, GaussianDecoder, GaussianEncoder, ImplicitEncoder, MomentEncoder, make_trunk
from .vae import VAE

METHODS = ("vae", "avb", "avb_ac", "asvae", "asvae_r", "asvae_g")


def build_method(method: str, *, x_shape, z_dim: int, arch: str = "mlp", hidden=(512, 512), act: str = "elu",
                 noise_dim: int = 32, adversary_hidden=(512, 512), adversary_kind: str = "concat",
                 adversary_steps: int = 1, n_basis: int = 8, n_flows: int = 8, likelihood: str = "bernoulli"):
    """method: ``"vae"`` (Gaussian encoder), ``"avb"`` (implicit encoder, noise at the input / at every
    conv layer), ``"avb_ac"`` (AVB with adaptive contrast, moment-tractable encoder).
    ``"asvae"``, ``"asvae_r"``, ``"asvae_g"`` (AS-VAE and its reconstruction- / generation-only variants:
    planar-flow encoder with ``n_flows`` layers, two discriminators of the adversary's architecture).
    arch: ``"mlp"``, ``"conv"`` (28x28) or ``"conv32"`` ((3, 32, 32)) for encoder and decoder.
    likelihood: ``"bernoulli"`` (binary pixels) or ``"gaussian"`` (dequantised 8-bit images; AS-VAE only). x_shape: e.g. (1, 28, 28) or (4,).
    raises ValueError for an unknown method (naming the known ones) or architecture.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if likelihood not in ("bernoulli", "gaussian"):
        raise ValueError(f"unknown likelihood {likelihood!r}: use 'bernoulli' or 'gaussian'")
    if likelihood == "gaussian" and not method.startswith("asvae"):
        raise ValueError(f"likelihood='gaussian' is implemented for the AS-VAE methods only, not {method!r}")
    Decoder = GaussianDecoder if likelihood == "gaussian" else BernoulliDecoder
    decoder = Decoder(z_dim, x_shape, arch=arch, hidden=tuple(reversed(hidden)), act=act)
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

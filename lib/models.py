"""Build a method and its networks from a plain config (the notebooks' and the runner's entry point).

>>> build_method("avb", x_shape=(1, 28, 28), z_dim=8, arch="mlp")   # doctest: +SKIP
"""
from __future__ import annotations

import math

from .avb import AVB
from .nets import Adversary, BernoulliDecoder, GaussianEncoder, ImplicitEncoder, MomentEncoder, make_trunk
from .vae import VAE

METHODS = ("vae", "avb", "avb_ac")


def build_method(method: str, *, x_shape, z_dim: int, arch: str = "mlp", hidden=(512, 512), act: str = "elu",
                 noise_dim: int = 32, adversary_hidden=(512, 512), adversary_kind: str = "concat",
                 adversary_steps: int = 1, n_basis: int = 8):
    """method: ``"vae"`` (Gaussian encoder), ``"avb"`` (implicit encoder, noise at the input / at every
    conv layer), ``"avb_ac"`` (AVB with adaptive contrast, moment-tractable encoder).
    arch: ``"mlp"`` or ``"conv"`` for encoder and decoder. x_shape: e.g. (1, 28, 28) or (4,).
    raises ValueError for an unknown method (naming the known ones) or architecture.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    decoder = BernoulliDecoder(z_dim, x_shape, arch=arch, hidden=tuple(reversed(hidden)), act=act)
    if method == "vae":
        return VAE(GaussianEncoder(make_trunk(arch, x_shape, hidden, act), z_dim), decoder)
    if method == "avb":
        encoder = ImplicitEncoder(make_trunk(arch, x_shape, hidden, act, noise_dim=noise_dim), z_dim)
    else:
        encoder = MomentEncoder(make_trunk(arch, x_shape, hidden, act), z_dim, n_basis=n_basis, noise_dim=noise_dim)
    adversary = Adversary(math.prod(x_shape), z_dim, adversary_hidden, act, kind=adversary_kind)
    return AVB(encoder, decoder, adversary, adaptive_contrast=(method == "avb_ac"), adversary_steps=adversary_steps)

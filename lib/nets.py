"""Networks: encoders (Gaussian, implicit, moment-tractable), decoders (Bernoulli, Gaussian, implicit), adversaries.

Every encoder and adversary is built on a *trunk*: a module mapping x (and, for implicit encoders,
noise eps) to features ``(B, F)``. Two trunks exist: an MLP (toys and the ``quick`` profile) and the
convolutional trunk of AVB's MNIST experiments (``full`` profile; Mescheder et al. 2017, App. F:
5x5 convolutions with 64/128/256/512 channels, noise added at every layer).

Shapes: x ``(B, *x_shape)`` with values in [0, 1]; z ``(B, Z)``; eps ``(B, E)``.

The distributions built at every training step skip ``torch.distributions``' argument checks
(``validate_args=False``, here and in the objectives): each check is a device synchronisation, and
``lib.train.fit``'s divergence guard stops a run whose values stop being finite anyway.
"""
from __future__ import annotations

import math
import operator
from types import SimpleNamespace

import torch
import torch.distributions as D
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "softplus": nn.Softplus}


def as_x_shape(x_shape) -> tuple[int, ...]:
    """``x_shape`` as a tuple of positive ints. raises TypeError / ValueError naming the expected form."""
    if isinstance(x_shape, int) or not hasattr(x_shape, "__iter__"):
        raise TypeError(f"x_shape must be a tuple of ints, e.g. (1, 28, 28) or (4,), got {x_shape!r}")
    try:
        shape = tuple(operator.index(d) for d in x_shape)  # ints, numpy ints, torch.Size entries
    except TypeError:
        shape = ()
    if not shape or not all(d > 0 for d in shape) or any(isinstance(d, bool) for d in x_shape):
        raise ValueError(f"x_shape must be a non-empty tuple of positive ints, e.g. (1, 28, 28), got {x_shape!r}")
    return shape


def _check_size(name: str, value) -> None:
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= 1
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_batch(x, x_shape, where: str, dtype: torch.dtype | None = None) -> None:
    """raises TypeError unless ``x`` is a floating-point tensor (of ``dtype``, if given), and ValueError unless its
    shape is (B, *x_shape); the messages name the fix. Shapes and dtypes only: no device synchronisation."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where} expects a torch.Tensor of shape (B, {', '.join(map(str, x_shape))}), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{where} expects floating-point pixels in [0, 1], got dtype {x.dtype}: "
                        "convert with x.float() (8-bit images: x.float() / 255)")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{where}: x has dtype {x.dtype} but the model's parameters are {dtype}; "
                        f"use x.to({dtype}) (or convert the model)")
    if x.dim() != len(x_shape) + 1 or tuple(x.shape[1:]) != tuple(x_shape):
        raise ValueError(f"{where} expects x of shape (B, {', '.join(map(str, x_shape))}), got {tuple(x.shape)}; "
                         f"reshape it, e.g. x.view(-1, {', '.join(map(str, x_shape))})")


def check_method_batch(method: nn.Module, x, where: str) -> None:
    """:func:`check_batch` against ``method.decoder.x_shape`` (``method.generator.x_shape`` for the GAN and BiGAN) and
    the dtype of the method's parameters (skipped for networks without ``x_shape``): the entry check of the methods'
    ``loss`` and ``elbo_terms``."""
    net = getattr(method, "decoder", None) or getattr(method, "generator", None)
    x_shape = getattr(net, "x_shape", None)
    if x_shape is not None:
        check_batch(x, x_shape, where, dtype=next(method.parameters()).dtype)


def mlp(sizes: list[int], act: str = "elu", out_act: bool = False) -> nn.Sequential:
    """Fully connected net ``sizes[0] -> ... -> sizes[-1]`` with ``act`` between layers."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or out_act:
            layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


class MLPTrunk(nn.Module):
    """x (B, *x_shape) [, eps (B, noise_dim)] -> features (B, hidden[-1]); eps is concatenated to x."""

    def __init__(self, x_dim: int, hidden: list[int], act: str = "elu", noise_dim: int = 0):
        super().__init__()
        self.noise_dim, self.out_dim = noise_dim, hidden[-1]
        self.net = mlp([x_dim + noise_dim, *hidden], act, out_act=True)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if self.noise_dim:
            h = torch.cat([h, eps], dim=1)
        return self.net(h)


class ConvTrunk(nn.Module):
    """(B, 1, 28, 28) [, eps] -> (B, 512 * 2 * 2): 5x5 stride-2 convs 64/128/256/512, ELU.

    With ``noise_dim > 0`` a learned projection of eps is added to every layer's pre-activation
    (AVB's MNIST encoder, "noise added at each layer").
    """

    def __init__(self, channels=(64, 128, 256, 512), noise_dim: int = 0):
        super().__init__()
        self.noise_dim = noise_dim
        chans = (1, *channels)
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 5, stride=2, padding=2) for i in range(len(channels)))
        self.noise = nn.ModuleList(nn.Linear(noise_dim, c) for c in channels) if noise_dim else None
        self.out_dim = channels[-1] * 2 * 2  # 28 -> 14 -> 7 -> 4 -> 2

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if self.noise is not None:
                h = h + self.noise[i](eps)[:, :, None, None]
            h = F.elu(h)
        return h.flatten(1)


class Conv32Trunk(nn.Module):
    """(B, 3, 32, 32) -> (B, 256 * 4 * 4): 4x4 stride-2 convs 64/128/256, ELU, no batch norm (DCGAN-style;
    AS-VAE's CIFAR-10 architecture, App. B of the paper, is not in our sources)."""

    def __init__(self, channels=(64, 128, 256), in_channels: int = 3):
        super().__init__()
        chans = (in_channels, *channels)
        self.net = nn.Sequential(*[m for i in range(len(channels))
                                   for m in (nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1), nn.ELU())])
        self.noise_dim, self.out_dim = 0, channels[-1] * 4 * 4

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten(1)


def make_trunk(arch: str, x_shape, hidden=(512, 512), act="elu", noise_dim=0) -> nn.Module:
    """``arch``: ``"mlp"``, ``"conv"`` (28x28 images only) or ``"conv32"`` ((3, 32, 32) images).
    raises ValueError otherwise (and TypeError / ValueError for an x_shape that is not a tuple of positive ints)."""
    x_shape = as_x_shape(x_shape)
    if arch == "conv32":
        if tuple(x_shape) != (3, 32, 32) or noise_dim:
            raise ValueError(f"arch='conv32' needs x_shape (3, 32, 32) and no noise input, got {tuple(x_shape)}")
        return Conv32Trunk()
    if arch == "mlp":
        return MLPTrunk(math.prod(x_shape), list(hidden), act, noise_dim)
    if arch == "conv":
        if tuple(x_shape) != (1, 28, 28):
            raise ValueError(f"arch='conv' needs x_shape (1, 28, 28), got {tuple(x_shape)}")
        return ConvTrunk(noise_dim=noise_dim)
    raise ValueError(f"unknown arch {arch!r}: use 'mlp' or 'conv'")


class AmortisedEncoder(nn.Module):
    """Base of the encoders q_phi(z|x) of :mod:`lib.nets` and :mod:`lib.flows`: a subclass gives ``sample(x)``
    (z ~ q_phi(z|x), (B, Z)) and ``z_dim``, and may replace the importance proposals for log p(x) below.

    * :meth:`gaussian_proposal`: a diagonal Gaussian r(z|x) near q_phi(z|x), the start of AIS chains
      (:func:`lib.ais.evaluate_ais`); by default fitted to ``n_fit`` posterior samples per x (as AVB's code does
      for AIS);
    * :meth:`importance_proposal`: IWAE's r(z|x) (:func:`lib.evaluate.iwae_log_px`); by default the Gaussian one.
      ``proposal_description`` names it in the evaluations' ``implementation`` text.
    """

    proposal_description = "diagonal-Gaussian proposal"

    @torch.no_grad()
    def fitted_gaussian(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
        """N(mean, diag (std_scale * std)^2) with the mean and standard deviation (floored at 1e-4) of ``n_fit``
        posterior samples per x (B, *x_shape), drawn in one batch of n_fit * B: batch shape (B,), event (Z,).
        raises ValueError if n_fit < 2 (the standard deviation of one sample is undefined)."""
        if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit < 2:
            raise ValueError(f"n_fit must be an int >= 2 (the standard deviation of n_fit posterior samples), "
                             f"got {n_fit!r}")
        B = x.shape[0]
        xs = x.unsqueeze(0).expand(n_fit, *x.shape).reshape(n_fit * B, *x.shape[1:])
        z = self.sample(xs).view(n_fit, B, -1)
        mean, std = z.mean(0), z.std(0).clamp_min(1e-4)
        return D.Independent(D.Normal(mean, std * std_scale), 1)

    @torch.no_grad()
    def gaussian_proposal(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
        """Diagonal-Gaussian importance distribution for p(z|x) (x: (B, *x_shape)): batch shape (B,), event (Z,).
        n_fit: posterior samples per x when it is fitted; std_scale: widens the std (lighter-tailed weights)."""
        return self.fitted_gaussian(x, n_fit, std_scale)

    @torch.no_grad()
    def importance_proposal(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Distribution:
        """IWAE's importance distribution r(z|x) for x (B, *x_shape): batch shape (B,), event (Z,), with ``sample``
        and ``log_prob``. By default :meth:`gaussian_proposal`."""
        return self.gaussian_proposal(x, n_fit, std_scale)


class GaussianEncoder(AmortisedEncoder):
    """q_phi(z|x) = N(mu(x), diag sigma(x)^2) (Kingma & Welling 2014). forward(x) -> Independent Normal over (B, Z).
    Its importance proposal is itself (the std times ``std_scale``)."""

    def __init__(self, trunk: nn.Module, z_dim: int):
        super().__init__()
        self.trunk, self.z_dim = trunk, z_dim
        self.head = nn.Linear(trunk.out_dim, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> D.Independent:
        mu, raw = self.head(self.trunk(x)).chunk(2, dim=1)
        q = D.Normal(mu, F.softplus(raw) + 1e-4, validate_args=False)
        return D.Independent(q, 1, validate_args=False)

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """Reparameterised z ~ q(z|x): (B, Z)."""
        return self(x).rsample()

    def sample_and_log_prob(self, x: torch.Tensor):
        """Reparameterised z ~ q(z|x): (B, Z), and log q(z|x): (B,) nats."""
        q = self(x)
        z = q.rsample()
        return z, q.log_prob(z)

    def log_prob(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log q(z|x) at given z (B, Z): (B,) nats."""
        return self(x).log_prob(z)

    @torch.no_grad()
    def gaussian_proposal(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
        """q_phi(z|x) itself, its std times ``std_scale`` (n_fit unused): batch shape (B,), event (Z,)."""
        q = self(x)
        mean, std = q.base_dist.loc, q.base_dist.scale
        return D.Independent(D.Normal(mean, std * std_scale), 1)


class ImplicitEncoder(AmortisedEncoder):
    """AVB's black-box posterior z = z_phi(x, eps), eps ~ N(0, I_E); its density is never evaluated. Its importance
    proposal is a Gaussian fitted to posterior samples (:meth:`AmortisedEncoder.fitted_gaussian`)."""

    def __init__(self, trunk: nn.Module, z_dim: int):
        super().__init__()
        if not getattr(trunk, "noise_dim", 0):
            raise ValueError("ImplicitEncoder needs a trunk built with noise_dim > 0")
        self.trunk, self.z_dim, self.noise_dim = trunk, z_dim, trunk.noise_dim
        self.head = nn.Linear(trunk.out_dim, z_dim)

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q_phi(z|x), differentiable in phi: (B, Z)."""
        eps = torch.randn(x.shape[0], self.noise_dim, device=x.device, dtype=x.dtype)
        return self.head(self.trunk(x, eps))


class MomentEncoder(AmortisedEncoder):
    """Moment-tractable implicit encoder for adaptive contrast (Mescheder et al. 2017, Sec. 4).

    z_k = a_{0,k}(x) + sum_i v_{i,k}(eps_i) a_{i,k}(x), eps_i ~ N(0, I_E) independent, i = 1..m,
    so E z = a_0 + sum_i E[v_i] a_i and Var z = sum_i Var[v_i] a_i^2. The moments of the noise
    networks v_i are estimated by Monte Carlo over ``n_moment_samples`` draws and detached.
    Its importance proposal is the moment-matched Gaussian N(E z, diag Var z).
    """

    def __init__(self, trunk: nn.Module, z_dim: int, n_basis: int = 8, noise_dim: int = 16,
                 noise_hidden: int = 64, n_moment_samples: int = 256):
        super().__init__()
        self.trunk, self.z_dim, self.m, self.noise_dim = trunk, z_dim, n_basis, noise_dim
        self.n_moment_samples = n_moment_samples
        self.head = nn.Linear(trunk.out_dim, (n_basis + 1) * z_dim)
        # m independent noise nets R^E -> R^Z, evaluated together with batched matmuls
        self.w1 = nn.Parameter(torch.randn(n_basis, noise_dim, noise_hidden) / math.sqrt(noise_dim))
        self.b1 = nn.Parameter(torch.zeros(n_basis, 1, noise_hidden))
        self.w2 = nn.Parameter(torch.randn(n_basis, noise_hidden, z_dim) / math.sqrt(noise_hidden))
        self.b2 = nn.Parameter(torch.zeros(n_basis, 1, z_dim))

    def _v(self, eps: torch.Tensor) -> torch.Tensor:
        """eps (m, N, E) -> v (m, N, Z)."""
        return torch.baddbmm(self.b2, F.elu(torch.baddbmm(self.b1, eps, self.w1)), self.w2)

    def _sample(self, x: torch.Tensor):
        B = x.shape[0]
        a = self.head(self.trunk(x)).view(B, self.m + 1, self.z_dim)
        a0, A = a[:, 0], a[:, 1:]
        v = self._v(torch.randn(self.m, B, self.noise_dim, device=x.device, dtype=x.dtype)).transpose(0, 1)  # (B, m, Z)
        return a0 + (v * A).sum(1), a0, A

    def sample_with_moments(self, x: torch.Tensor):
        """returns z (B, Z) differentiable in phi, and the detached mean and std of q_phi(z|x), each (B, Z)."""
        z, a0, A = self._sample(x)
        with torch.no_grad():
            vs = self._v(torch.randn(self.m, self.n_moment_samples, self.noise_dim, device=x.device, dtype=x.dtype))
            ev, varv = vs.mean(1), vs.var(1)  # (m, Z)
            mean = a0 + (ev * A).sum(1)
            std = ((varv * A.pow(2)).sum(1)).clamp_min(1e-8).sqrt()
        return z, mean.detach(), std.detach()

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q_phi(z|x), differentiable in phi: (B, Z) (no moments computed)."""
        return self._sample(x)[0]

    @torch.no_grad()
    def gaussian_proposal(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
        """N(E z, diag (std_scale * std z)^2) from :meth:`sample_with_moments` (n_fit unused): batch (B,),
        event (Z,)."""
        _, mean, std = self.sample_with_moments(x)
        return D.Independent(D.Normal(mean, std * std_scale), 1)


def decoder_net(in_dim: int, x_shape, arch: str = "mlp", hidden=(512, 512), act: str = "elu", out_mult: int = 1) -> nn.Module:
    """The decoders' shared network: (B, in_dim) -> (B, out_mult * prod(x_shape)) (mlp) or (B, out_mult * C, H, W).

    arch ``"mlp"``; ``"conv"`` (AVB's MNIST decoder: FC -> 256x7x7 -> 5x5 transposed convs -> (out_mult, 28, 28));
    ``"conv32"`` (FC -> 256x4x4 -> 4x4 transposed convs -> (3 * out_mult, 32, 32)).
    raises ValueError for an unknown arch or an x_shape it does not fit.
    """
    x_shape = as_x_shape(x_shape)
    _check_size("the decoder's input size (z_dim + noise_dim)", in_dim)
    if arch == "mlp":
        return mlp([in_dim, *hidden, out_mult * math.prod(x_shape)], act)
    if arch == "conv":
        if x_shape != (1, 28, 28):
            raise ValueError(f"arch='conv' needs x_shape (1, 28, 28), got {x_shape}")
        return nn.Sequential(
            nn.Linear(in_dim, 7 * 7 * 256), nn.ELU(), nn.Unflatten(1, (256, 7, 7)),
            nn.ConvTranspose2d(256, 128, 5, stride=2, padding=2, output_padding=1), nn.ELU(),
            nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1), nn.ELU(),
            nn.Conv2d(64, out_mult, 5, padding=2),
        )
    if arch == "conv32":
        if x_shape != (3, 32, 32):
            raise ValueError(f"arch='conv32' needs x_shape (3, 32, 32), got {x_shape}")
        return nn.Sequential(
            nn.Linear(in_dim, 256 * 4 * 4), nn.ELU(), nn.Unflatten(1, (256, 4, 4)),
            nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1), nn.ELU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ELU(),
            nn.ConvTranspose2d(64, 3 * out_mult, 4, stride=2, padding=1),
        )
    raise ValueError(f"unknown arch {arch!r}: use 'mlp', 'conv' or 'conv32'")


class BernoulliDecoder(nn.Module):
    """p_theta(x|z) = prod_pixels Bernoulli(sigmoid(logits(z))). forward(z) -> logits (B, *x_shape).
    arch: ``"mlp"`` or ``"conv"`` (:func:`decoder_net`)."""

    def __init__(self, z_dim: int, x_shape, arch: str = "mlp", hidden=(512, 512), act: str = "elu"):
        super().__init__()
        _check_size("z_dim", z_dim)
        self.x_shape = as_x_shape(x_shape)
        if arch not in ("mlp", "conv"):
            raise ValueError(f"unknown arch {arch!r}: use 'mlp' or 'conv'")
        self.net = decoder_net(z_dim, x_shape, arch, hidden, act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.x_shape)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """The mean image E[x|z] = sigmoid(logits(z)), the pixel probabilities: (B, *x_shape) in (0, 1)."""
        return torch.sigmoid(self(z))

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z) in nats, summed over pixels: (B,). x (B, *x_shape) in [0, 1] (a batch of 1 broadcasts).
        raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_batch(x, self.x_shape, "BernoulliDecoder.log_prob")
        logits = self(z)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(1).sum(1)

    def rsample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p_theta(x|z) in {0, 1} (B, *x_shape), with the straight-through gradient of the mean
        (the value is a Bernoulli sample, the gradient that of sigmoid(logits)): a Bernoulli sample has
        no reparameterisation, and AS-VAE's L_z term needs d x_xi / d theta (Pu et al. 2017, Eq. 11)."""
        probs = torch.sigmoid(self(z))
        x = torch.bernoulli(probs.detach(), generator=generator)
        return x + (probs - probs.detach())  # exactly x in value (probs - probs.detach() == 0)


class GaussianDecoder(nn.Module):
    """p_theta(x|z) = N(mean(z), diag scale^2) on images in [0, 1]; mean = sigmoid(.).

    std=None: a learned per-pixel scale(z) = softplus(.) + 1e-3 (AS-VAE's CIFAR-10 model, dequantised data).
    std=s > 0: a fixed scale s for every pixel, the "Gaussian output with hyperparameter sigma" whose negative
    log-likelihood is the L2 reconstruction loss (Kingma & Welling 2014; the baseline of Fickinger 2019, Sec. 3).
    forward(z) -> (mean, scale), each (B, *x_shape). arch: ``"mlp"``, ``"conv"`` or ``"conv32"`` (:func:`decoder_net`).
    raises ValueError for std <= 0.
    """

    def __init__(self, z_dim: int, x_shape, arch: str = "mlp", hidden=(512, 512), act: str = "elu",
                 std: float | None = None):
        super().__init__()
        if std is not None and not std > 0:
            raise ValueError(f"std must be positive (or None for a learned scale), got {std}")
        _check_size("z_dim", z_dim)
        self.x_shape, self.std = as_x_shape(x_shape), std
        self.net = decoder_net(z_dim, x_shape, arch, hidden, act, out_mult=1 if std else 2)

    def forward(self, z: torch.Tensor):
        if self.std:
            mean = torch.sigmoid(self.net(z).reshape(z.shape[0], *self.x_shape))
            return mean, torch.full_like(mean, self.std)
        mean, raw = self.net(z).reshape(z.shape[0], 2, *self.x_shape).unbind(1)  # conv32: channels 0-2, 3-5
        return torch.sigmoid(mean), F.softplus(raw) + 1e-3

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """The mean image E[x|z]: (B, *x_shape) in (0, 1)."""
        return self(z)[0]

    def distribution(self, z: torch.Tensor) -> D.Normal:
        """One univariate Normal per pixel, batch shape (B, *x_shape) (for :func:`lib.evaluate.discretized_log_prob`)."""
        return D.Normal(*self(z), validate_args=False)

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z), the Gaussian density (on R^D) at x (B, *x_shape) in [0, 1], summed over
        dimensions: (B,) nats. Test likelihoods of 8-bit data use :func:`lib.evaluate.discretized_log_prob` instead.
        raises TypeError / ValueError for x that is not a float tensor of shape (B, *x_shape)."""
        check_batch(x, self.x_shape, "GaussianDecoder.log_prob")
        return self.distribution(z).log_prob(x).flatten(1).sum(1)

    def rsample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised x_xi = mean + scale * xi, xi ~ N(0, I): (B, *x_shape)."""
        mean, scale = self(z)
        return mean + scale * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)


class ImplicitDecoder(nn.Module):
    """Implicit likelihood x = g_theta(z, xi) = sigmoid(net([z, xi])), xi ~ N(0, I_noise_dim): no density, any
    (multimodal) p_theta(x|z) the network can push xi to (Fickinger 2019, Sec. 3: the Gaussian output assumption
    removed). x in (0, 1), shape (B, *x_shape). arch: ``"mlp"``, ``"conv"`` or ``"conv32"`` (:func:`decoder_net`).
    """

    def __init__(self, z_dim: int, x_shape, arch: str = "mlp", hidden=(512, 512), act: str = "elu", noise_dim: int = 16):
        super().__init__()
        if noise_dim < 1:
            raise ValueError(f"an implicit decoder needs noise_dim >= 1, got {noise_dim}")
        _check_size("z_dim", z_dim)
        self.x_shape, self.z_dim, self.noise_dim = as_x_shape(x_shape), z_dim, noise_dim
        self.net = decoder_net(z_dim + noise_dim, x_shape, arch, hidden, act)

    def forward(self, z: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """x = g_theta(z, xi): (B, *x_shape) in (0, 1)."""
        return torch.sigmoid(self.net(torch.cat([z, xi], 1)).reshape(z.shape[0], *self.x_shape))

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p_theta(x|z), reparameterised (differentiable in theta and z): (B, *x_shape)."""
        xi = torch.randn(z.shape[0], self.noise_dim, generator=generator, device=z.device, dtype=z.dtype)
        return self(z, xi)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """One sample x ~ p_theta(x|z) (an implicit decoder has no mean image): (B, *x_shape) in (0, 1)."""
        return self.sample(z)


class CodeDiscriminator(nn.Module):
    """S(z) = MLP(z): (B, Z) -> (B,). (No analytic ||z||^2 / 2 term: in an f-GAN KL game E_{p(z)} e^{S(z) - 1} would
    then be infinite.)"""

    def __init__(self, z_dim: int, hidden=(256, 256), act: str = "elu"):
        super().__init__()
        self.net = mlp([z_dim, *hidden, 1], act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


class Adversary(nn.Module):
    """T_psi(x, z) = T_net(x, z) + 1/2 ||z||^2 (Mescheder et al. 2017; the analytic -log p(z) term
    up to a constant, so that T_net only has to learn log q(z|x)). forward -> (B,) logits.

    ``kind="concat"``: T_net = MLP([x, z]). ``kind="inner"`` (AVB's MNIST adversary):
    T_net = <theta(x), s(z)> + T_x(x) + T_z(z) with MLP branches for x and z.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden=(256, 256), act: str = "elu", kind: str = "concat",
                 embed_dim: int = 64, analytic_prior: bool = True):
        super().__init__()
        self.kind, self.analytic_prior = kind, analytic_prior
        if kind == "concat":
            self.net = mlp([x_dim + z_dim, *hidden, 1], act)
        elif kind == "inner":
            self.x_branch = mlp([x_dim, *hidden, embed_dim + 1], act)
            self.z_branch = mlp([z_dim, *hidden, embed_dim + 1], act)
        else:
            raise ValueError(f"unknown adversary kind {kind!r}: use 'concat' or 'inner'")

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        xf = x.flatten(1)
        if self.kind == "concat":
            t = self.net(torch.cat([xf, z], dim=1)).squeeze(1)
        else:
            a, b = self.x_branch(xf), self.z_branch(z)
            t = (a[:, :-1] * b[:, :-1]).sum(1) + a[:, -1] + b[:, -1]
        if self.analytic_prior:
            t = t + 0.5 * z.pow(2).sum(1)
        return t


def standard_normal_prior(z_dim: int, device="cpu") -> D.Independent:
    """p(z) = N(0, I_Z) as a ``torch.distributions`` object over (B, Z)."""
    zero = torch.zeros(z_dim, device=device)
    normal = D.Normal(zero, torch.ones_like(zero), validate_args=False)
    return D.Independent(normal, 1, validate_args=False)


# ---------------------------------------------------------------------------------------------------------
# The options of the "nets" family of lib.registry

#: The options every builder of the ``"nets"`` family of :mod:`lib.registry` (VAE, AVB, AS-VAE, BAVAE) accepts, with
#: their defaults. A builder uses those its method's networks have and ignores the rest (a VAE has no adversary), so
#: one set of options builds several methods for comparison.
#:
#: arch: ``"mlp"``, ``"conv"`` (28x28) or ``"conv32"`` ((3, 32, 32)) for encoder and decoder (:func:`make_trunk`,
#: :func:`decoder_net`); hidden: the encoder trunk's MLP widths (the decoder's, reversed); act: activation;
#: noise_dim: the implicit encoders' noise size (AVB, BAVAE) and the moment encoder's (AVB + AC);
#: adversary_hidden, adversary_kind (``"concat"`` / ``"inner"``): the adversaries / discriminators (:class:`Adversary`);
#: adversary_steps: critic steps per primal step; n_basis: the moment encoder's m; n_flows: AS-VAE's planar layers;
#: likelihood: ``"bernoulli"`` (binary pixels) or ``"gaussian"`` (decoder_std: a fixed scale, the L2 baseline; None:
#: learned per pixel); decoder_noise_dim, t_max, generator_loss: BAVAE's implicit decoder and game (:mod:`lib.bavae`).
NETS_OPTIONS = {"arch": "mlp", "hidden": (512, 512), "act": "elu", "noise_dim": 32, "adversary_hidden": (512, 512),
                "adversary_kind": "concat", "adversary_steps": 1, "n_basis": 8, "n_flows": 8,
                "likelihood": "bernoulli", "decoder_std": None, "decoder_noise_dim": 16, "t_max": 10.0,
                "generator_loss": "minimax"}
LIKELIHOODS = ("bernoulli", "gaussian")


def nets_options(method: str, options: dict, likelihoods: tuple[str, ...] = ("bernoulli",)) -> SimpleNamespace:
    """:data:`NETS_OPTIONS` updated by ``options``, as attributes. likelihoods: those ``method`` implements.
    raises TypeError for an option not in :data:`NETS_OPTIONS` (naming them), ValueError for an unknown likelihood or
    one ``method`` does not implement."""
    unknown = sorted(set(options) - set(NETS_OPTIONS))
    if unknown:
        raise TypeError(f"{method!r} got unknown option(s) {unknown}; the 'nets' family takes {sorted(NETS_OPTIONS)}")
    o = SimpleNamespace(**{**NETS_OPTIONS, **options})
    if o.likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {o.likelihood!r}: use 'bernoulli' or 'gaussian'")
    if o.likelihood not in likelihoods:
        raise ValueError(f"likelihood={o.likelihood!r} is not implemented for {method!r} (it takes {likelihoods}); "
                         "the Gaussian likelihood is implemented for the VAE and AS-VAE methods")
    return o


def explicit_decoder(z_dim: int, x_shape, o: SimpleNamespace) -> nn.Module:
    """The decoder of options ``o`` (:func:`nets_options`): a :class:`GaussianDecoder` (scale ``o.decoder_std``) for
    ``o.likelihood == "gaussian"``, else a :class:`BernoulliDecoder`; the MLP widths are ``o.hidden`` reversed."""
    dec_hidden = tuple(reversed(o.hidden))
    if o.likelihood == "gaussian":
        return GaussianDecoder(z_dim, x_shape, arch=o.arch, hidden=dec_hidden, act=o.act, std=o.decoder_std)
    return BernoulliDecoder(z_dim, x_shape, arch=o.arch, hidden=dec_hidden, act=o.act)

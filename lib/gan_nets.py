"""DCGAN-style networks shared by AVAE and its baselines (VAE, GAN, VAE/GAN, BiGAN): generator, discriminator, encoder.

Radford, Metz & Chintala (ICLR 2016), "architecture guidelines for stable deep convolutional GANs": no pooling, strided
convolutions in the discriminator and encoder, fractionally strided (transposed) convolutions in the generator; batch
norm in the generator (every layer but the output) and in the discriminator (every layer but the input one); ReLU in
the generator, LeakyReLU(0.2) in the discriminator; weights initialised from N(0, 0.02) (batch-norm scales from
N(1, 0.02)). Our pixels lie in [0, 1], so the generator's output activation is a sigmoid instead of DCGAN's tanh.

**Layouts.** Every net is built from one spec per image size (any channel count C >= 1; the repository uses
(1, 28, 28) MNIST / Fashion-MNIST, (3, 32, 32) CIFAR-10 and (3, 64, 64) CelebA). With w = ``width``:

======== ===================================================== ==========================
size     down trunk (encoder = discriminator), conv k/s/p       features
======== ===================================================== ==========================
28 x 28  C->w 4/2/1 (14), w->2w 4/2/1 (7), 2w->4w 3/2/1 (4)     4w x 4 x 4
32 x 32  C->w (16), w->2w (8), 2w->4w (4), all 4/2/1            4w x 4 x 4
64 x 64  C->w (32), w->2w (16), 2w->4w (8), 4w->8w (4), 4/2/1   8w x 4 x 4 (DCGAN's layout)
======== ===================================================== ==========================

The generator mirrors the trunk: a 4x4 transposed convolution from the (B, z_dim + noise_dim, 1, 1) input to the
trunk's last channel count ("project and reshape"), then the trunk's convolutions transposed in reverse order.

**Matched size.** The encoder and the discriminator use the same :class:`DownTrunk` (same layers, same parameter
count); only their heads differ (encoder: a linear map to the code; discriminator: a linear map to one logit, or, for
BiGAN's joint D(x, z), a small MLP on [trunk features, embedded z]). The quick (CPU) and full profiles differ only by
``width``.

**Parameter counts** (computed with :func:`parameter_counts`, z_dim = 100, generator noise_dim = 0; a noise input
xi adds noise_dim * C_last * 16 generator weights, C_last = 4w (28, 32) or 8w (64)):

============ ===== ========== ========== =========== ========== ===============
x_shape      width generator  trunk      encoder*    discrim.   joint D (BiGAN)
============ ===== ========== ========== =========== ========== ===============
(1, 28, 28)  16    129,505    27,088     129,688     28,113     187,729
(1, 28, 28)  64    837,505    427,840    837,640     431,937    2,839,873
(3, 32, 32)  16    144,355    41,936     144,536     42,961     202,577
(3, 32, 32)  64    1,068,931  659,264    1,069,064   663,361    3,071,297
(3, 64, 64)  16    378,083    173,264    378,264     175,313    464,977
(3, 64, 64)  64    3,576,707  2,757,440  3,576,840   2,765,633  7,266,625
============ ===== ========== ========== =========== ========== ===============

(*) encoder of kind ``"shared_sigma"`` (AVAE): trunk + linear head to Z + a (Z,) log sigma; ``"deterministic"`` has Z
fewer parameters, ``"gaussian"`` a head twice as wide (e.g. 1,247,240 at (1, 28, 28), width 64). The encoder's head
(C_last * 16 * Z weights) makes it larger than the
discriminator; the trunks are identical. Discriminator = trunk + linear head to one logit.
Shapes: x ``(B, C, H, W)`` in [0, 1]; z ``(B, Z)``; xi ``(B, noise_dim)``; logits ``(B,)``.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

#: image size (H = W) -> [(kernel, stride, padding) of each trunk convolution], and each layer's channel multiplier
SPECS: dict[int, tuple[list[tuple[int, int, int]], list[int]]] = {
    28: ([(4, 2, 1), (4, 2, 1), (3, 2, 1)], [1, 2, 4]),
    32: ([(4, 2, 1)] * 3, [1, 2, 4]),
    64: ([(4, 2, 1)] * 4, [1, 2, 4, 8]),
}
ENCODER_KINDS = ("gaussian", "deterministic", "shared_sigma")


def _spec(x_shape, width: int):
    """Validate x_shape = (C, H, H) with H in SPECS and width >= 1; returns (C, H, convs, channels) with
    channels = [C, w * m_1, ...]. raises ValueError naming the supported shapes."""
    x_shape = tuple(x_shape)
    if len(x_shape) != 3 or x_shape[1] != x_shape[2] or x_shape[1] not in SPECS or x_shape[0] < 1:
        raise ValueError(f"unsupported image shape {x_shape}: DCGAN nets take (C, H, H) with H in {sorted(SPECS)}, "
                         "e.g. (1, 28, 28), (3, 32, 32), (3, 64, 64)")
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    convs, mults = SPECS[x_shape[1]]
    return x_shape[0], x_shape[1], convs, [x_shape[0], *(int(width) * m for m in mults)]


@contextmanager
def eval_mode(module: nn.Module):
    """Run ``module`` in eval mode (batch norm on its running statistics, which stay untouched), then restore its
    previous mode."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016, Sec. 4: conv and linear weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DownTrunk(nn.Module):
    """The shared conv trunk of the encoder and the discriminator: x (B, C, H, H) -> features (B, out_dim).

    Block i = Conv2d (no bias when batch norm follows) [-> BatchNorm2d, all blocks but the first] -> LeakyReLU(0.2).
    raises ValueError for an unsupported shape or width.
    """

    def __init__(self, x_shape, width: int = 64):
        super().__init__()
        _, _, convs, chans = _spec(x_shape, width)
        self.x_shape, self.width = tuple(x_shape), int(width)
        blocks = []
        for i, (k, s, p) in enumerate(convs):
            layers: list[nn.Module] = [nn.Conv2d(chans[i], chans[i + 1], k, s, p, bias=i == 0)]
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = chans[-1] * 4 * 4  # every spec ends at 4 x 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.x_shape)
        h = x
        for b in self.blocks:
            h = b(h)
        return h.flatten(1)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The pre-normalisation convolution output of block ``layer`` (1-based; None: the last), flattened:
        (B, channels * h * w). VAE/GAN's Dis_l (Larsen et al. 2016, Sec. 2.2; their released code measures the
        reconstruction on the last conv layer's output before batch norm). raises ValueError for a bad layer."""
        n = len(self.blocks)
        layer = n if layer is None else layer
        if not 1 <= layer <= n:
            raise ValueError(f"layer must be in 1..{n}, got {layer}")
        _check_images(x, self.x_shape)
        h = x
        for b in self.blocks[:layer - 1]:
            h = b(h)
        return self.blocks[layer - 1][0](h).flatten(1)


def _check_images(x: torch.Tensor, x_shape) -> None:
    if tuple(x.shape[1:]) != tuple(x_shape):
        raise ValueError(f"expected images of shape (B, {', '.join(map(str, x_shape))}), got {tuple(x.shape)}")


class Generator(nn.Module):
    """G(z[, xi]) -> x (B, *x_shape) in (0, 1) (sigmoid output; DCGAN generator with ReLU and batch norm).

    z_dim: code size Z; noise_dim: size of AVAE's extra noise xi concatenated to z (0: a deterministic G(z), the
    GAN / VAE / VAE-GAN / BiGAN generators and AVAE's VAE decoder). forward(z, xi) needs xi exactly when
    noise_dim > 0; :meth:`sample` draws xi ~ N(0, I). raises ValueError for an unsupported shape, width, z_dim < 1 or
    noise_dim < 0.
    """

    def __init__(self, z_dim: int, x_shape, noise_dim: int = 0, width: int = 64):
        super().__init__()
        if z_dim < 1 or noise_dim < 0:
            raise ValueError(f"need z_dim >= 1 and noise_dim >= 0, got z_dim={z_dim}, noise_dim={noise_dim}")
        _, _, convs, chans = _spec(x_shape, width)
        self.z_dim, self.noise_dim, self.x_shape, self.width = z_dim, noise_dim, tuple(x_shape), int(width)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim + noise_dim, chans[-1], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[-1]), nn.ReLU()]
        for i in reversed(range(len(convs))):
            k, s, p = convs[i]
            last = i == 0
            layers.append(nn.ConvTranspose2d(chans[i + 1], chans[i], k, s, p, bias=last))
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(chans[i]), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got {tuple(z.shape)}")
        if self.noise_dim:
            if xi is None or xi.shape != (z.shape[0], self.noise_dim):
                raise ValueError(f"this generator needs xi of shape (B, {self.noise_dim}); use sample(z) to draw it")
            z = torch.cat([z, xi], 1)
        elif xi is not None:
            raise ValueError("this generator has noise_dim = 0 and takes no xi")
        return self.net(z[:, :, None, None])

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = G(z, xi) with fresh xi ~ N(0, I_noise_dim) (just G(z) when noise_dim = 0); differentiable in z and the
        weights: (B, *x_shape)."""
        if not self.noise_dim:
            return self(z)
        xi = torch.randn(z.shape[0], self.noise_dim, generator=generator, device=z.device, dtype=z.dtype)
        return self(z, xi)


class Discriminator(nn.Module):
    """D(x) -> (B,) logits (z_dim = 0), or BiGAN / ALI's joint D(x, z) -> (B,) logits (z_dim > 0).

    Trunk: :class:`DownTrunk` (the encoder's layout). z_dim = 0: a linear head on the trunk features (= DCGAN's final
    4x4 valid convolution). z_dim > 0: z is joined after the conv trunk: z -> Linear(Z, 8w) -> LeakyReLU, then
    [features, embedded z] -> Linear(., 8w) -> LeakyReLU -> Linear(8w, 1) (a nonlinear joint layer: a linear head on
    [features, z] could only score x and z separately, never their agreement). :meth:`features` gives Dis_l for VAE/GAN.
    raises ValueError for an unsupported shape or width, z_dim < 0, or a missing / unexpected z.
    """

    def __init__(self, x_shape, width: int = 64, z_dim: int = 0):
        super().__init__()
        if z_dim < 0:
            raise ValueError(f"z_dim must be >= 0, got {z_dim}")
        self.trunk = DownTrunk(x_shape, width)
        self.x_shape, self.z_dim, self.width = tuple(x_shape), z_dim, int(width)
        if z_dim:
            hidden = 8 * int(width)
            self.z_embed = nn.Sequential(nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2))
            self.head = nn.Sequential(nn.Linear(self.trunk.out_dim + hidden, hidden), nn.LeakyReLU(0.2),
                                      nn.Linear(hidden, 1))
        else:
            self.head = nn.Linear(self.trunk.out_dim, 1)
        dcgan_init(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x)
        if self.z_dim:
            if z is None or z.shape != (x.shape[0], self.z_dim):
                raise ValueError(f"this joint discriminator needs z of shape (B, {self.z_dim})")
            h = torch.cat([h, self.z_embed(z)], 1)
        elif z is not None:
            raise ValueError("this discriminator has z_dim = 0 and takes no z")
        return self.head(h).squeeze(1)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Dis_l(x): :meth:`DownTrunk.features`."""
        return self.trunk.features(x, layer)

    def features_and_logits(self, x: torch.Tensor, layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(Dis_l(x), D(x)) from one pass through the trunk: the same values as :meth:`features` and ``forward``
        (one batch-norm pass instead of two, so in training mode the running statistics are updated once).
        Only for a discriminator of x alone. returns: ((B, channels * h * w), (B,)).
        raises ValueError for a joint discriminator (z_dim > 0) or a bad layer."""
        if self.z_dim:
            raise ValueError("features_and_logits is for a discriminator of x alone (z_dim = 0)")
        blocks = self.trunk.blocks
        layer = len(blocks) if layer is None else layer
        if not 1 <= layer <= len(blocks):
            raise ValueError(f"layer must be in 1..{len(blocks)}, got {layer}")
        _check_images(x, self.x_shape)
        h = x
        for i, b in enumerate(blocks):
            if i == layer - 1:
                h = b[0](h)
                feats = h.flatten(1)
                for m in b[1:]:
                    h = m(h)
            else:
                h = b(h)
        return feats, self.head(h.flatten(1)).squeeze(1)


class Encoder(nn.Module):
    """x (B, *x_shape) -> codes, on the discriminator's trunk (:class:`DownTrunk`, same layout and size).

    kind:
      * ``"gaussian"``: q(z|x) = N(mu(x), diag sigma(x)^2); forward -> (mu (B, Z), sigma (B, Z)),
        sigma = softplus(.) + 1e-4 (VAE, VAE/GAN).
      * ``"shared_sigma"``: AVAE's encoder, q(z|x) = N(mu(x), diag sigma_e^2) with a learned data-independent (Z,)
        sigma_e < 1: log sigma_e = -softplus(raw) (initially sigma_e = 0.5); forward -> (mu (B, Z), log_sigma (Z,)).
      * ``"deterministic"``: z = E(x); forward -> z (B, Z) (BiGAN).
    :meth:`sample` draws a reparameterised z ~ q(z|x) (the deterministic kind returns E(x)).
    raises ValueError for an unknown kind, an unsupported shape or width, or z_dim < 1.
    """

    def __init__(self, x_shape, z_dim: int, width: int = 64, kind: str = "gaussian"):
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder kind {kind!r}: use one of {ENCODER_KINDS}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        self.trunk = DownTrunk(x_shape, width)
        self.x_shape, self.z_dim, self.kind, self.width = tuple(x_shape), z_dim, kind, int(width)
        self.head = nn.Linear(self.trunk.out_dim, 2 * z_dim if kind == "gaussian" else z_dim)
        dcgan_init(self)
        if kind == "shared_sigma":  # -softplus(raw) = log 0.5 at raw = log(2^1 - 1) = 0
            self.raw_sigma = nn.Parameter(torch.zeros(z_dim))

    @property
    def log_sigma(self) -> torch.Tensor:
        """(Z,) log sigma_e = -softplus(raw) < 0 (``"shared_sigma"`` only; raises AttributeError otherwise)."""
        if self.kind != "shared_sigma":
            raise AttributeError(f"a {self.kind!r} encoder has no shared log_sigma")
        return -F.softplus(self.raw_sigma)

    def forward(self, x: torch.Tensor):
        h = self.head(self.trunk(x))
        if self.kind == "gaussian":
            mu, raw = h.chunk(2, dim=1)
            return mu, F.softplus(raw) + 1e-4
        if self.kind == "shared_sigma":
            return h, self.log_sigma
        return h

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """Reparameterised z = mu + sigma * eps, eps ~ N(0, I): (B, Z); E(x) for the deterministic kind."""
        if self.kind == "deterministic":
            return self(x)
        mu, s = self(x)
        sigma = s.exp().expand_as(mu) if self.kind == "shared_sigma" else s
        return mu + sigma * torch.randn_like(mu)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(x_shape, width: int = 64, z_dim: int = 100, noise_dim: int = 0) -> dict[str, int]:
    """Parameter counts of every net for one setting (the module docstring's table): ``generator`` (with noise_dim),
    ``trunk``, ``encoder_gaussian``, ``encoder_shared_sigma``, ``encoder_deterministic``, ``discriminator``,
    ``joint_discriminator`` (z_dim)."""
    return {
        "generator": count_parameters(Generator(z_dim, x_shape, noise_dim, width)),
        "trunk": count_parameters(DownTrunk(x_shape, width)),
        **{f"encoder_{k}": count_parameters(Encoder(x_shape, z_dim, width, k)) for k in ENCODER_KINDS},
        "discriminator": count_parameters(Discriminator(x_shape, width)),
        "joint_discriminator": count_parameters(Discriminator(x_shape, width, z_dim)),
    }


if __name__ == "__main__":  # prints the docstring's table
    for shape in ((1, 28, 28), (3, 32, 32), (3, 64, 64)):
        for w in (16, 64):
            c = parameter_counts(shape, w)
            print(shape, w, *(f"{c[k]:,}" for k in ("generator", "trunk", "encoder_shared_sigma", "discriminator",
                                                    "joint_discriminator")))

"""AVAE's baselines on the shared DCGAN networks (:mod:`lib.gan_nets`) and training loop (:func:`lib.train.fit`):
the VAE with an L2 likelihood (:class:`ConvVAE`), the GAN (DCGAN), VAE/GAN and BiGAN.

docs/papers.md §4: the AVAE paper compares against a VAE, a GAN (DCGAN), VAE/GAN (Larsen et al. 2016) and BiGAN,
all with DCGAN-style networks in the same code. Each baseline here is a :class:`~lib.method.Method` (players, losses),
registered in :mod:`lib.registry` (family ``"dcgan"``) as ``"dcgan_vae"``, ``"dcgan"``, ``"vaegan"`` and ``"bigan"``;
:mod:`lib.avae` registers ``"avae"`` on networks of the same sizes.

Conventions. Pixels in [0, 1]. Logistic discriminators output logits; log sigmoid(l) = -softplus(-l) and
log(1 - sigmoid(l)) = -softplus(l). Losses are means over the batch of per-example values (nats per example for
the likelihood-like terms). Unless said otherwise, real and generated images go through a batch-normalised
discriminator in *separate* forward passes (separate batch statistics; the DCGAN reference implementation's practice).
Every method has ``sample(n)`` (images from the prior), ``encode(x)`` and ``reconstruct(x)`` (the GAN's raise
NotImplementedError: it has no encoder); they run the networks in their current mode (``fit`` leaves them in eval
mode, so batch norm uses its running statistics) and without gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .gan_nets import Discriminator, Encoder, Generator
from .losses import discriminator_loss, gaussian_kl, vae_loss
from .method import Method
from .nets import check_method_batch
from .registry import register

__all__ = ["ConvVAE", "GAN", "VAEGAN", "BiGAN"]


class _Generative(Method):
    """Shared helpers: ``sample(n)`` from the network named ``generator_name``, ``encode(x)`` (z ~ q(z|x) of an
    ``encoder``, see :meth:`lib.gan_nets.Encoder.sample`)."""

    generator_name = "generator"

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x) (mu + sigma eps; BiGAN's deterministic E(x)): (B, Z)."""
        return self.encoder.sample(x)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images G(z[, xi]), z ~ N(0, I) (fresh xi when the generator has noise): (n, *x_shape) in (0, 1)."""
        return getattr(self, self.generator_name).sample(self.draw_z(n))

    def _unknown(self, player: str):
        self.player_parameters(player)  # raises KeyError naming the players


class ConvVAE(_Generative):
    """The VAE baseline: L = beta KL(q(z|x) || N(0, I)) + 1/2 ||x - Dec(z)||^2, z ~ q(z|x) reparameterised
    (Kingma & Welling 2014 with a unit-variance Gaussian likelihood up to a constant; the same L_E as AVAE's VAE,
    :func:`lib.losses.vae_loss`).

    encoder: :class:`~lib.gan_nets.Encoder` of kind ``"gaussian"`` (per-example sigma) or ``"shared_sigma"``;
    decoder: :class:`~lib.gan_nets.Generator` with noise_dim = 0. One player, ``"vae"``.
    raises ValueError for a deterministic encoder, a noisy decoder, mismatched z sizes or beta < 0.
    """

    players = {"vae": ("encoder", "decoder")}
    critic_players = ()
    generator_name = "decoder"

    def __init__(self, encoder: Encoder, decoder: Generator, beta: float = 1.0):
        super().__init__()
        if encoder.kind == "deterministic":
            raise ValueError("ConvVAE needs a 'gaussian' or 'shared_sigma' encoder")
        if decoder.noise_dim or decoder.z_dim != encoder.z_dim:
            raise ValueError("ConvVAE's decoder must take only z (noise_dim = 0) with the encoder's z_dim")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.encoder, self.decoder, self.z_dim, self.beta = encoder, decoder, encoder.z_dim, float(beta)

    def _log_sigma(self, s: torch.Tensor) -> torch.Tensor:
        return s if self.encoder.kind == "shared_sigma" else s.log()

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_method_batch(self, x, "ConvVAE.loss")
        if player != "vae":
            self._unknown(player)
        mu, s = self.encoder(x)
        log_sigma = self._log_sigma(s)
        x_rec = self.decoder(mu + log_sigma.exp() * torch.randn_like(mu))
        per = vae_loss(x, x_rec, mu, log_sigma, self.beta)
        return {"loss": per.mean(), "rec": (0.5 * (x - x_rec).flatten(1).pow(2).sum(1)).mean().detach(),
                "kl": gaussian_kl(mu, log_sigma.exp()).mean().detach(), "sigma_mean": log_sigma.exp().mean().detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
        """Dec(z), z ~ q(z|x) (``use_mean``: z = mu(x)): (B, *x_shape)."""
        mu, s = self.encoder(x)
        z = mu if use_mean else mu + self._log_sigma(s).exp() * torch.randn_like(mu)
        return self.decoder(z)


class GAN(_Generative):
    """DCGAN (Radford et al. 2016) trained with the GAN game of Goodfellow et al. (2014):

    discriminator: min_D  -E_x log sigmoid D(x) - E_z log(1 - sigmoid D(G(z)))   (Goodfellow et al. 2014, Eq. 1
                   negated; :func:`lib.losses.discriminator_loss`);
    generator:     min_G  -E_z log sigmoid D(G(z))   (the non-saturating loss, Goodfellow et al. 2014, Sec. 3).

    generator: :class:`~lib.gan_nets.Generator` (noise_dim = 0 in the baseline); discriminator:
    :class:`~lib.gan_nets.Discriminator` with z_dim = 0. Players ``"discriminator"`` then ``"generator"``, one step
    each per iteration (DCGAN). A GAN has no encoder: :meth:`reconstruct` raises NotImplementedError.
    """

    players = {"discriminator": ("discriminator",), "generator": ("generator",)}
    critic_players = ("discriminator",)

    def __init__(self, generator: Generator, discriminator: Discriminator):
        super().__init__()
        if discriminator.z_dim:
            raise ValueError("GAN needs a discriminator of x alone (z_dim = 0)")
        self.generator, self.discriminator, self.z_dim = generator, discriminator, generator.z_dim

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_method_batch(self, x, "GAN.loss")
        z = self.draw_z(x.shape[0], x.device)
        if player == "discriminator":
            with torch.no_grad():
                fake = self.generator.sample(z)
            d_real, d_fake = self.discriminator(x), self.discriminator(fake)
            return {"loss": discriminator_loss(d_real, d_fake), "d_real": d_real.mean().detach(),
                    "d_fake": d_fake.mean().detach()}
        if player == "generator":
            d_fake = self.discriminator(self.generator.sample(z))
            return {"loss": F.softplus(-d_fake).mean(), "d_fake": d_fake.mean().detach()}
        self._unknown(player)

    def encode(self, x: torch.Tensor):
        raise NotImplementedError("a GAN has no encoder: it cannot encode images (nor reconstruct them)")

    def reconstruct(self, x: torch.Tensor):
        raise NotImplementedError("a GAN has no encoder, so it cannot reconstruct; the reconstruction metrics (MSE, "
                                  "LPIPS) are not defined for it (the '-' of docs/papers.md §4's table)")


class VAEGAN(_Generative):
    """VAE/GAN (Larsen, Sonderby, Larochelle & Winther, ICML 2016, "Autoencoding beyond pixels using a learned
    similarity metric"), Sec. 2 and Algorithm 1, with x_tilde = Dec(z), z ~ q(z|x) and x_p = Dec(z_p), z_p ~ N(0, I):

        L_prior = KL(q(z|x) || p(z))
        L_llike^Dis_l = 1/2 ||Dis_l(x_tilde) - Dis_l(x)||^2  (-log of a unit-variance Gaussian on the discriminator's
                        l-th layer features, Sec. 2.2, up to a constant; summed over features)
        L_GAN = -log sigmoid D(x) - log(1 - sigmoid D(x_tilde)) - log(1 - sigmoid D(x_p))   (the GAN loss with both
                reconstructions and prior samples as fakes, written as the discriminator's loss -- the sign under
                which Algorithm 1's updates are consistent:)
        encoder:       min  beta L_prior + L_llike^Dis_l     (beta = 1 in the paper)
        decoder:       min  gamma L_llike^Dis_l - L_GAN
        discriminator: min  L_GAN

    ``decoder_gan="minimax"`` uses -L_GAN for the decoder as written (= log(1 - sigmoid D(x_tilde)) +
    log(1 - sigmoid D(x_p)) + const); ``"nonsaturating"`` (default) replaces it by -log sigmoid D(x_tilde) -
    log sigmoid D(x_p) (Goodfellow et al. 2014, Sec. 3: same fixed point, no vanishing gradient when D wins).
    The GAN term never reaches the encoder (the paper's choice: the encoder is not a player of the GAN term).

    gamma: weight of the feature reconstruction for the decoder (Larsen et al. Sec. 2.2). Default 1e-5: their
    released CelebA script (``recon_vs_gan_weight=1e-5``; the paper does not give the value). Our Dis_l features have
    another scale than theirs, so gamma needs tuning per dataset. rec_layer: l, the trunk block (1-based; None: the
    last, as in their CelebA script) whose pre-batch-norm convolution output is Dis_l
    (:meth:`lib.gan_nets.DownTrunk.features`).

    Simplifications against the paper and its code: (1) the three players step in turn on fresh batches (``fit``)
    rather than simultaneously on one batch; (2) no equilibrium / margin rule that skips decoder or discriminator
    updates, and real and generated terms have equal weight (their code: ``real_vs_gen_weight`` 0.66, margin 0.4 around
    0.68); (3) DCGAN networks of :mod:`lib.gan_nets` (4x4 stride-2 convolutions, LeakyReLU) instead of theirs (5x5
    convolutions, ReLU, fully connected 1024/512 layers); (4) the non-saturating decoder loss by default (their code
    uses the minimax form: option ``decoder_gan="minimax"``).

    beta: the weight of L_prior in the encoder's loss (1: the paper; our addition, the KL weight of the VAE baseline,
    since L_llike's unit-variance Gaussian on Dis_l sets an arbitrary scale against the KL: on MNIST at width 16
    Dis_l's squared error is ~12 per image, so with beta = 1 the codes keep ~2.6 nats and reconstructions are weak:
    ``paper_reproductions/results/validation/mnist_vaegan_w16_s4000_separate_beta1.json``).
    dis_batches: how x, x_tilde and x_p go through the batch-normalised discriminator. ``"separate"`` (default): one
    pass per batch, each with its own batch statistics, the convention of every other baseline here (DCGAN's
    practice). ``"joint"``: one pass on the concatenated batch, as in their code, so that Dis_l(x) and Dis_l(x_tilde)
    share batch statistics. Without their equilibrium rule (simplification 2) the joint pass lets the discriminator win
    outright on MNIST (width 16, 2k iterations, gamma 0.1, beta 1: mean logits +13.5 on data, -12.4 on prior samples;
    the decoder collapsed to one image, MNIST-IS 1.09), while separate passes train like the DCGAN (+0.3 / -1.5;
    MNIST-FD 64 on validation images, the DCGAN's 79 at the same budget): ``paper_reproductions/results/validation/
    mnist_vaegan_w16_*.json`` (:mod:`paper_reproductions.validation_gans`).
    """

    players = {"encoder": ("encoder",), "decoder": ("decoder",), "discriminator": ("discriminator",)}
    critic_players = ("discriminator",)
    generator_name = "decoder"
    DECODER_GAN = ("nonsaturating", "minimax")
    DIS_BATCHES = ("joint", "separate")

    def __init__(self, encoder: Encoder, decoder: Generator, discriminator: Discriminator, gamma: float = 1e-5,
                 rec_layer: int | None = None, decoder_gan: str = "nonsaturating", dis_batches: str = "separate",
                 beta: float = 1.0):
        super().__init__()
        if encoder.kind != "gaussian":
            raise ValueError(f"VAEGAN needs a 'gaussian' encoder, got {encoder.kind!r}")
        if decoder.noise_dim or decoder.z_dim != encoder.z_dim:
            raise ValueError("VAEGAN's decoder must take only z (noise_dim = 0) with the encoder's z_dim")
        if discriminator.z_dim:
            raise ValueError("VAEGAN needs a discriminator of x alone (z_dim = 0)")
        if gamma < 0 or beta < 0:
            raise ValueError(f"gamma and beta must be >= 0, got gamma={gamma}, beta={beta}")
        if decoder_gan not in self.DECODER_GAN:
            raise ValueError(f"unknown decoder_gan {decoder_gan!r}: use one of {self.DECODER_GAN}")
        if dis_batches not in self.DIS_BATCHES:
            raise ValueError(f"unknown dis_batches {dis_batches!r}: use one of {self.DIS_BATCHES}")
        n = len(discriminator.trunk.blocks)
        if rec_layer is not None and not 1 <= rec_layer <= n:
            raise ValueError(f"rec_layer must be in 1..{n} (or None: the last), got {rec_layer}")
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.z_dim, self.gamma, self.rec_layer, self.decoder_gan = encoder.z_dim, float(gamma), rec_layer, decoder_gan
        self.dis_batches, self.beta = dis_batches, float(beta)

    def _dis(self, *xs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(Dis_l features, logits) of each batch: one discriminator pass on the concatenated batches
        (``dis_batches="joint"``) or one pass per batch (``"separate"``)."""
        if self.dis_batches == "separate":
            out = [self.discriminator.features_and_logits(x, self.rec_layer) for x in xs]
            return [f for f, _ in out], [d for _, d in out]
        feats, logits = self.discriminator.features_and_logits(torch.cat(xs), self.rec_layer)
        sizes = [len(x) for x in xs]
        return list(feats.split(sizes)), list(logits.split(sizes))

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_method_batch(self, x, "VAEGAN.loss")
        B = x.shape[0]
        if player == "discriminator":
            with torch.no_grad():
                x_tilde = self.decoder(self.encoder.sample(x))
                x_p = self.decoder(self.draw_z(B, x.device))
            _, (d_x, d_tilde, d_p) = self._dis(x, x_tilde, x_p)
            l_gan = F.softplus(-d_x).mean() + F.softplus(d_tilde).mean() + F.softplus(d_p).mean()
            return {"loss": l_gan, "d_real": d_x.mean().detach(), "d_rec": d_tilde.mean().detach(),
                    "d_prior": d_p.mean().detach()}
        if player == "encoder":
            mu, sigma = self.encoder(x)
            x_tilde = self.decoder(mu + sigma * torch.randn_like(mu))
            (f_x, f_tilde), _ = self._dis(x, x_tilde)
            rec = 0.5 * (f_tilde - f_x.detach()).pow(2).sum(1)
            kl = gaussian_kl(mu, sigma)
            return {"loss": (self.beta * kl + rec).mean(), "kl": kl.mean().detach(), "rec_dis": rec.mean().detach()}
        if player == "decoder":
            with torch.no_grad():
                z = self.encoder.sample(x)
            x_tilde, x_p = self.decoder(z), self.decoder(self.draw_z(B, x.device))
            (f_x, f_tilde, _), (_, d_tilde, d_p) = self._dis(x, x_tilde, x_p)
            rec = 0.5 * (f_tilde - f_x.detach()).pow(2).sum(1)
            if self.decoder_gan == "nonsaturating":
                gan = F.softplus(-d_tilde).mean() + F.softplus(-d_p).mean()
            else:  # -L_GAN up to the constant -log sigmoid D(x)
                gan = -(F.softplus(d_tilde).mean() + F.softplus(d_p).mean())
            return {"loss": self.gamma * rec.mean() + gan, "rec_dis": rec.mean().detach(), "gan": gan.detach(),
                    "d_rec": d_tilde.mean().detach(), "d_prior": d_p.mean().detach()}
        self._unknown(player)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
        """Dec(z), z ~ q(z|x) (``use_mean``: z = mu(x)): (B, *x_shape)."""
        mu, sigma = self.encoder(x)
        return self.decoder(mu if use_mean else mu + sigma * torch.randn_like(mu))


class BiGAN(_Generative):
    """BiGAN (Donahue, Krahenbuhl & Darrell, ICLR 2017) / ALI (Dumoulin et al., ICLR 2017): a deterministic encoder
    E(x), a generator G(z) and a joint discriminator D(x, z) that tells (x, E(x)), x ~ data, from (G(z), z), z ~ p(z):

        V(D, E, G) = E_x log sigmoid D(x, E(x)) + E_z log(1 - sigmoid D(G(z), z))     (Donahue et al. 2017, Sec. 3)
        discriminator: min -V;
        generator (E and G together): min -E_x log(1 - sigmoid D(x, E(x))) - E_z log sigmoid D(G(z), z)
            -- the non-saturating form with the labels swapped ("inverse" objective of Donahue et al.'s training
            section; ALI's generator loss).

    encoder: :class:`~lib.gan_nets.Encoder` of kind ``"deterministic"``; generator: :class:`~lib.gan_nets.Generator`
    with noise_dim = 0; discriminator: :class:`~lib.gan_nets.Discriminator` with z_dim = Z. Players
    ``"discriminator"`` then ``"generator"`` (= encoder and generator). Reconstructions G(E(x)).
    Simplifications: DCGAN networks of :mod:`lib.gan_nets` (no dropout in D, unlike ALI); a deterministic encoder
    (ALI's is stochastic).
    """

    players = {"discriminator": ("discriminator",), "generator": ("encoder", "generator")}
    critic_players = ("discriminator",)

    def __init__(self, encoder: Encoder, generator: Generator, discriminator: Discriminator):
        super().__init__()
        if encoder.kind != "deterministic":
            raise ValueError(f"BiGAN needs a 'deterministic' encoder, got {encoder.kind!r}")
        if generator.noise_dim or generator.z_dim != encoder.z_dim:
            raise ValueError("BiGAN's generator must take only z (noise_dim = 0) with the encoder's z_dim")
        if discriminator.z_dim != encoder.z_dim:
            raise ValueError(f"BiGAN needs a joint discriminator D(x, z) with z_dim = {encoder.z_dim}, "
                             f"got z_dim = {discriminator.z_dim}")
        self.encoder, self.generator, self.discriminator, self.z_dim = encoder, generator, discriminator, encoder.z_dim

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_method_batch(self, x, "BiGAN.loss")
        z = self.draw_z(x.shape[0], x.device)
        if player == "discriminator":
            with torch.no_grad():
                z_enc, x_gen = self.encoder(x), self.generator(z)
            d_enc, d_gen = self.discriminator(x, z_enc), self.discriminator(x_gen, z)
            return {"loss": discriminator_loss(d_enc, d_gen), "d_enc": d_enc.mean().detach(),
                    "d_gen": d_gen.mean().detach()}
        if player == "generator":
            d_enc, d_gen = self.discriminator(x, self.encoder(x)), self.discriminator(self.generator(z), z)
            return {"loss": discriminator_loss(d_gen, d_enc), "d_enc": d_enc.mean().detach(),
                    "d_gen": d_gen.mean().detach()}
        self._unknown(player)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)): (B, *x_shape)."""
        return self.generator(self.encoder(x))


# ------------------------------------------------------------------------------------------------- builders
# Family "dcgan" of lib.registry: networks of one ``width`` (quick and full profiles differ only by it; the full profile
# of docs/papers.md §4: z_dim 100, width 64); ``noise_dim`` is AVAE's xi size, accepted and unused here so that one
# set of options builds every model of the family; further options go to the method's constructor.

@register("dcgan_vae", family="dcgan", summary="VAE with an L2 (unit-variance Gaussian) likelihood on DCGAN networks")
def build_dcgan_vae(*, x_shape, z_dim: int, width: int = 64, noise_dim: int = 16, **options) -> ConvVAE:
    """:class:`ConvVAE` (options: ``beta``): a ``"gaussian"`` encoder, then the decoder."""
    return ConvVAE(Encoder(x_shape, z_dim, width, "gaussian"), Generator(z_dim, x_shape, 0, width), **options)


@register("dcgan", family="dcgan", summary="GAN: DCGAN generator and discriminator, non-saturating loss")
def build_dcgan(*, x_shape, z_dim: int, width: int = 64, noise_dim: int = 16, **options) -> GAN:
    """:class:`GAN` (no options): the generator, then the discriminator."""
    return GAN(Generator(z_dim, x_shape, 0, width), Discriminator(x_shape, width), **options)


@register("vaegan", family="dcgan", summary="VAE/GAN (Larsen et al. 2016): discriminator-feature reconstruction")
def build_vaegan(*, x_shape, z_dim: int, width: int = 64, noise_dim: int = 16, **options) -> VAEGAN:
    """:class:`VAEGAN` (options: ``gamma``, ``rec_layer``, ``decoder_gan``): a ``"gaussian"`` encoder, the decoder,
    the discriminator."""
    return VAEGAN(Encoder(x_shape, z_dim, width, "gaussian"), Generator(z_dim, x_shape, 0, width),
                  Discriminator(x_shape, width), **options)


@register("bigan", family="dcgan", summary="BiGAN / ALI: deterministic encoder, joint discriminator D(x, z)")
def build_bigan(*, x_shape, z_dim: int, width: int = 64, noise_dim: int = 16, **options) -> BiGAN:
    """:class:`BiGAN` (no options): a ``"deterministic"`` encoder, the generator, the joint discriminator."""
    return BiGAN(Encoder(x_shape, z_dim, width, "deterministic"), Generator(z_dim, x_shape, 0, width),
                 Discriminator(x_shape, width, z_dim), **options)

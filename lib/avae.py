"""Adversarial Variational Auto Encoder (Plumerault, Le Borgne & Hudelot, ICPR 2020, arXiv:2012.11551): its losses.

AVAE keeps a VAE (encoder E with mean mu_e(x) and a *data-independent* standard deviation sigma_e, a (Z,) vector;
decoder Dec trained by the VAE loss only) and adds a generator G(z, xi) and a discriminator C (docs/papers.md §4):

    L_E = beta KL(N(mu_e(x), sigma_e^2) || N(0, I)) + 1/2 ||x - Dec(z)||^2          (:func:`lib.losses.vae_loss`)
    L_G = adversarial term on C(G(z, xi)) + L_Z(G(z, xi))                            (:func:`generator_loss`)
    L_C = BCE(C(x), 1) + BCE(C(G), 0)                                   (:func:`lib.losses.discriminator_loss`)

The *latent reconstruction loss* L_Z replaces the pixel MSE, whose optimum E[x|z] averages plausible images (blur).
Slides, Eq. 4, with f(x_hat) = mu_e(x_hat)/sigma_e and g(x) = sqrt(1 - sigma_e^2) z / sigma_e:

    L_Z(x_hat) = 1/2 || (mu_e(x_hat) - sqrt(1 - sigma_e^2) z) / sigma_e ||^2,

whose optimum mu_e(x_hat*(z)) = sqrt(1 - sigma_e^2) z has the law N(0, I - diag sigma_e^2) of mu_e(x) for x ~ data
whenever the aggregated posterior equals the prior (notebook 40, Sec. 2), so it does not contradict the GAN's optimum.
The authors' released code uses another form (``variant="code"``; see :func:`latent_reconstruction_loss`).
The model, :class:`AVAE`, plays these losses on the DCGAN networks of :mod:`lib.gan_nets`; it is registered as
``"avae"`` (:mod:`lib.registry`, family ``"dcgan"``, beside the baselines of :mod:`lib.gan_baselines`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .gan_nets import Discriminator, Encoder, Generator, eval_mode
from .losses import discriminator_loss, gaussian_kl, vae_loss
from .method import Method
from .nets import check_method_batch
from .registry import register

L_Z_VARIANTS = ("slides", "code")


def latent_reconstruction_loss(mu_e_xhat: torch.Tensor, z: torch.Tensor, log_sigma_e: torch.Tensor,
                               variant: str = "slides") -> torch.Tensor:
    """AVAE's latent reconstruction loss L_Z, per example.

    mu_e_xhat: (B, Z) encoder means of the generated images, mu_e(G(z, xi)). z: (B, Z) the codes G was given.
    log_sigma_e: (Z,) log of the encoder's data-independent standard deviation (a (B, Z) tensor broadcasts too).
    variant:
      * ``"slides"`` (the repository's default; slides Eq. 4): 1/2 sum_j ((mu_j - sqrt(1 - s_j^2) z_j) / s_j)^2,
        s = sigma_e; half a squared distance in units of the encoder's noise, dimensionless (a squared error, not a
        log-likelihood of the data, although it equals -log N(sqrt(1-s^2) z; mu, s^2) up to a constant). Optimum
        over mu for given z: sqrt(1 - s^2) z; for z random given the conditioning,
        sqrt(1 - s^2) E[z | ...].
      * ``"code"``: the released code's precision-weighted form, *as described in our reference notes*
        (docs/papers.md §4 [C]), not re-read from the code: 1/2 sum_j w_j (mu_j - z_j)^2 with
        w = softmax(-2 log s) = (1/s^2) / sum_k (1/s_k^2) (precision weights normalised to sum to 1) and no
        sqrt(1 - s^2). Its optimum is mu = z, whose law N(0, I) is *not* that of mu_e(x) (notebook 40). The notes say
        the code sums over the batch; this returns per-example values, so sum them (not mean) to match. The overall
        factor 1/2 is ours (not recorded in the notes); it only rescales L_Z against the adversarial term.
    returns: (B,) per-example loss.
    raises ValueError for an unknown variant (listing the known ones), for shape mismatches, and, for ``"slides"``,
    when some sigma_e >= 1 (sqrt(1 - sigma_e^2) is then undefined or zero: the code would carry no information).
    """
    if variant not in L_Z_VARIANTS:
        raise ValueError(f"unknown L_Z variant {variant!r}: use one of {L_Z_VARIANTS}")
    if mu_e_xhat.shape != z.shape or mu_e_xhat.dim() != 2:
        raise ValueError(f"mu_e_xhat and z must both be (B, Z), got {tuple(mu_e_xhat.shape)} and {tuple(z.shape)}")
    if log_sigma_e.shape[-1] != z.shape[1]:
        raise ValueError(f"log_sigma_e must have Z = {z.shape[1]} entries in its last dimension, got {tuple(log_sigma_e.shape)}")
    if variant == "slides":
        if not bool((log_sigma_e < 0).all()):
            raise ValueError("variant='slides' needs sigma_e < 1 in every latent dimension (sqrt(1 - sigma_e^2) "
                             f"must be real and positive); got max sigma_e = {float(log_sigma_e.exp().max()):.6g}")
        shrink = torch.sqrt(-torch.expm1(2 * log_sigma_e))          # sqrt(1 - sigma^2), accurate for sigma near 0 or 1
        return 0.5 * ((mu_e_xhat - shrink * z) * torch.exp(-log_sigma_e)).pow(2).sum(1)
    w = torch.softmax(-2 * log_sigma_e, dim=-1)                      # normalised precisions, sum_j w_j = 1
    return 0.5 * (w * (mu_e_xhat - z).pow(2)).sum(1)


def generator_loss(c_fake: torch.Tensor, mu_e_xhat: torch.Tensor, z: torch.Tensor, log_sigma_e: torch.Tensor,
                   weight: float = 1.0, variant: str = "slides") -> torch.Tensor:
    """AVAE's generator loss, per example: softplus(-C(G(z, xi))) + weight * L_Z(G(z, xi)).

    c_fake: (B,) discriminator logits on the generated images; the adversarial term is the non-saturating
    -log sigmoid(C) (Goodfellow et al. 2014), paired with the logistic discriminator loss BCE(C(x), 1) + BCE(C(G), 0)
    (:func:`lib.losses.discriminator_loss`). The reference notes write "-C(G(z, xi))"; whether the released code uses
    the raw logit or -log sigmoid is not recorded, and this is our choice. mu_e_xhat, z, log_sigma_e, variant: as in
    :func:`latent_reconstruction_loss`. weight: >= 0, the weight of L_Z. returns: (B,).
    raises ValueError for weight < 0, c_fake not (B,), and whatever :func:`latent_reconstruction_loss` raises.
    """
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    if c_fake.shape != z.shape[:1]:
        raise ValueError(f"c_fake must be (B,) = ({z.shape[0]},), got {tuple(c_fake.shape)}")
    return F.softplus(-c_fake) + weight * latent_reconstruction_loss(mu_e_xhat, z, log_sigma_e, variant)


class AVAE(Method):
    """The Adversarial Variational Auto Encoder (Plumerault et al. 2020; docs/papers.md §4): a VAE (encoder E, decoder
    Dec) and a GAN (generator G(z, xi), discriminator C) coupled by the latent reconstruction loss L_Z, which makes G
    faithful to the code through the encoder's mean mu_e.

    Networks (:mod:`lib.gan_nets`): encoder -- :class:`~lib.gan_nets.Encoder` of kind ``"shared_sigma"`` (mu_e(x) and a
    data-independent sigma_e < 1); decoder -- :class:`~lib.gan_nets.Generator` with noise_dim = 0 (Dec, trained by the
    VAE loss only); generator -- :class:`~lib.gan_nets.Generator` (noise_dim > 0 gives G(z, xi)); discriminator --
    :class:`~lib.gan_nets.Discriminator` of x alone.

    Players, stepped in this order each iteration (each on a fresh batch, others frozen by :func:`lib.train.fit`):

    * ``"vae"`` (encoder, decoder): L_E = beta KL + 1/2 ||x - Dec(z)||^2, z = mu_e(x) + sigma_e eps
      (:func:`lib.losses.vae_loss`);
    * ``"discriminator"``: L_C = BCE(C(x), 1) + BCE(C(G(z, xi)), 0), z ~ N(0, I)
      (:func:`lib.losses.discriminator_loss`);
    * ``"generator"``: L_G = -log sigmoid C(G(z, xi)) + lz_weight * L_Z(G(z, xi)), z ~ N(0, I) (:func:`generator_loss`),
      with mu_e and sigma_e of the *current* encoder: the encoder's parameters are frozen during this step, but
      gradients flow through it to G. The encoder runs in eval mode here (batch norm on the running statistics of
      real batches), so mu_e is the same per-image function that encodes real data, and generated images never
      enter its running statistics (our choice; the notes do not say what the released code does).

    beta: KL weight (>= 0). lz_weight: weight of L_Z (>= 0; 0 makes G a plain GAN generator). lz_variant:
    ``"slides"`` (default) or ``"code"`` (:func:`latent_reconstruction_loss`; losses are batch means, so the code
    variant's batch sum is a rescaling of lz_weight by the batch size). Reconstructions are the generator's,
    G(mu_e(x) + sigma_e eps, xi), as the paper evaluates them (:meth:`reconstruct`); :meth:`reconstruct_vae` gives Dec's.
    raises ValueError for an encoder that is not ``"shared_sigma"``, a noisy decoder, mismatched z sizes, a joint
    discriminator, beta < 0, lz_weight < 0 or an unknown lz_variant.
    """

    players = {"vae": ("encoder", "decoder"), "discriminator": ("discriminator",), "generator": ("generator",)}
    critic_players = ("discriminator",)

    def __init__(self, encoder: Encoder, decoder: Generator, generator: Generator, discriminator: Discriminator,
                 beta: float = 1.0, lz_weight: float = 1.0, lz_variant: str = "slides"):
        super().__init__()
        if getattr(encoder, "kind", None) != "shared_sigma":
            raise ValueError("AVAE needs an encoder with a data-independent sigma_e (Encoder kind 'shared_sigma'), "
                             f"got kind {getattr(encoder, 'kind', None)!r}")
        if decoder.noise_dim:
            raise ValueError("AVAE's VAE decoder takes only z (noise_dim = 0); the noise xi belongs to the generator")
        if not decoder.z_dim == generator.z_dim == encoder.z_dim:
            raise ValueError(f"encoder, decoder and generator must share z_dim, got {encoder.z_dim}, {decoder.z_dim}, "
                             f"{generator.z_dim}")
        if discriminator.z_dim:
            raise ValueError("AVAE's discriminator C sees images only (z_dim = 0)")
        if beta < 0 or lz_weight < 0:
            raise ValueError(f"beta and lz_weight must be >= 0, got beta={beta}, lz_weight={lz_weight}")
        if lz_variant not in L_Z_VARIANTS:
            raise ValueError(f"unknown L_Z variant {lz_variant!r}: use one of {L_Z_VARIANTS}")
        self.encoder, self.decoder, self.generator, self.discriminator = encoder, decoder, generator, discriminator
        self.z_dim, self.beta, self.lz_weight, self.lz_variant = encoder.z_dim, float(beta), float(lz_weight), lz_variant

    def generator_terms(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator step's terms at given codes z (B, Z), differentiable in G (and through the encoder):
        ``loss`` (B,) = adversarial + lz_weight * L_Z, ``adv`` (B,), ``L_Z`` (B,), ``x_hat`` (B, *x_shape)."""
        x_hat = self.generator.sample(z)
        c_fake = self.discriminator(x_hat)
        with eval_mode(self.encoder):
            mu_hat, log_sigma = self.encoder(x_hat)
        per = generator_loss(c_fake, mu_hat, z, log_sigma, self.lz_weight, self.lz_variant)
        lz = latent_reconstruction_loss(mu_hat, z, log_sigma, self.lz_variant)
        return {"loss": per, "adv": F.softplus(-c_fake), "L_Z": lz, "x_hat": x_hat}

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three players' objectives on a batch x (B, *x_shape) of pixels in [0, 1] (Plumerault et al. 2020):
        ``"vae"``: the VAE loss beta KL + 1/2 ||x - Dec(z)||^2 (:func:`lib.losses.vae_loss`); ``"discriminator"``: the
        logistic loss of C on real x against G(z, xi) (:func:`lib.losses.discriminator_loss`); ``"generator"``: the
        adversarial term plus lz_weight L_Z (:meth:`generator_terms`). Values are batch means per example: nats for the
        KL and the logistic / adversarial terms; 1/2 ||x - Dec(z)||^2 and L_Z are half squared distances (pixels in
        [0, 1]; units of sigma_e^2), not nats. raises KeyError for an unknown player, TypeError / ValueError for x
        of the wrong dtype or shape."""
        check_method_batch(self, x, "AVAE.loss")
        if player == "vae":
            mu, log_sigma = self.encoder(x)
            x_rec = self.decoder(mu + log_sigma.exp() * torch.randn_like(mu))
            per = vae_loss(x, x_rec, mu, log_sigma, self.beta)
            rec = 0.5 * (x - x_rec).flatten(1).pow(2).sum(1)
            kl = gaussian_kl(mu, log_sigma.exp())
            return {"loss": per.mean(), "rec": rec.mean().detach(), "kl": kl.mean().detach(),
                    "sigma_mean": log_sigma.exp().mean().detach()}
        if player == "discriminator":
            with torch.no_grad():
                fake = self.generator.sample(self.draw_z(x.shape[0], x.device))
            c_real, c_fake = self.discriminator(x), self.discriminator(fake)
            return {"loss": discriminator_loss(c_real, c_fake), "c_real": c_real.mean().detach(),
                    "c_fake": c_fake.mean().detach()}
        if player == "generator":
            t = self.generator_terms(self.draw_z(x.shape[0], x.device))
            return {"loss": t["loss"].mean(), "adv": t["adv"].mean().detach(), "L_Z": t["L_Z"].mean().detach()}
        self.player_parameters(player)  # raises KeyError naming the players

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images G(z, xi), z ~ N(0, I), fresh xi: (n, *x_shape) in (0, 1) (networks in their current mode)."""
        return self.generator.sample(self.draw_z(n))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
        """z = mu_e(x) + sigma_e eps (``use_mean``: mu_e(x)): (B, Z)."""
        mu, log_sigma = self.encoder(x)
        return mu if use_mean else mu + log_sigma.exp() * torch.randn_like(mu)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
        """The generator's reconstructions G(mu_e(x) + sigma_e eps, xi), fresh eps and xi (``use_mean``: eps = 0), as the
        paper evaluates them (MSE, LPIPS against x): (B, *x_shape)."""
        return self.generator.sample(self.encode(x, use_mean))

    @torch.no_grad()
    def reconstruct_vae(self, x: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
        """The VAE decoder's reconstructions Dec(mu_e(x) + sigma_e eps) (``use_mean``: Dec(mu_e(x))): (B, *x_shape)."""
        return self.decoder(self.encode(x, use_mean))


@register("avae", family="dcgan", summary="AVAE: VAE + GAN coupled by the latent reconstruction loss L_Z")
def build_avae(*, x_shape, z_dim: int, width: int = 64, noise_dim: int = 16, **options) -> AVAE:
    """:class:`AVAE` on DCGAN networks of one ``width`` (as its baselines, :mod:`lib.gan_baselines`); noise_dim: the
    size of the generator's xi (our choice, the notes give none); options: ``beta``, ``lz_weight``, ``lz_variant``.
    Built in this order: a ``"shared_sigma"`` encoder, the VAE decoder, the generator G(z, xi), the discriminator."""
    return AVAE(Encoder(x_shape, z_dim, width, "shared_sigma"), Generator(z_dim, x_shape, 0, width),
                Generator(z_dim, x_shape, noise_dim, width), Discriminator(x_shape, width), **options)

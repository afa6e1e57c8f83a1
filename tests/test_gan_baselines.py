"""DCGAN networks (lib.gan_nets), the baselines (lib.gan_baselines) and AVAE (lib.avae.AVAE), the "dcgan" family of
lib.registry: shapes, ranges, matched sizes, players, AVAE's generator step through the frozen encoder, reconstructions
and validation errors."""
import re

import pytest
import torch

import lib.gan_nets as gan_nets
from lib.avae import AVAE, latent_reconstruction_loss
from lib.gan_nets import (Discriminator, DownTrunk, Encoder, Generator, count_parameters, eval_mode,
                          parameter_counts)
from lib import registry
from lib.gan_baselines import GAN, VAEGAN, BiGAN, ConvVAE
from lib.train import fit, set_trainable

METHODS = registry.names("dcgan")


def build(name: str, x_shape, **options):
    return registry.build(name, x_shape=x_shape, **options)

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]
W, Z = 4, 6  # tiny width and code size: CPU-cheap


class Fixed:
    """A sampler that always returns the same batch."""

    def __init__(self, x):
        self.x = x

    def next(self):
        return self.x

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _params(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


@pytest.mark.parametrize("shape", SHAPES)
def test_output_shapes_and_ranges(shape):
    B = 3
    g = Generator(Z, shape, width=W)
    x = g(torch.randn(B, Z))
    assert x.shape == (B, *shape) and ((x > 0) & (x < 1)).all()
    gn = Generator(Z, shape, noise_dim=2, width=W).eval()
    z = torch.randn(B, Z)
    a, b = gn.sample(z), gn.sample(z)
    assert a.shape == (B, *shape) and ((a > 0) & (a < 1)).all() and not torch.equal(a, b)  # xi matters
    assert torch.equal(gn(z, torch.zeros(B, 2)), gn(z, torch.zeros(B, 2)))
    d, dj = Discriminator(shape, W), Discriminator(shape, W, z_dim=Z)
    assert d(x).shape == (B,) and dj(x, z).shape == (B,)
    feats = [d.features(x, layer).shape for layer in range(1, len(d.trunk.blocks) + 1)]
    assert feats[-1] == (B, d.trunk.out_dim) and all(f[0] == B for f in feats)
    mu, sigma = Encoder(shape, Z, W, "gaussian")(x)
    assert mu.shape == sigma.shape == (B, Z) and (sigma > 0).all()
    es = Encoder(shape, Z, W, "shared_sigma")
    mu, log_sigma = es(x)
    assert mu.shape == (B, Z) and log_sigma.shape == (Z,) and (log_sigma < 0).all()
    with torch.no_grad():
        es.raw_sigma.fill_(-10.0)  # softplus -> 4.5e-5: sigma_e stays below 1 as raw decreases
    assert (es.log_sigma < 0).all() and (es.log_sigma.exp() < 1).all()
    assert Encoder(shape, Z, W, "deterministic")(x).shape == (B, Z)
    assert Encoder(shape, Z, W, "gaussian").sample(x).shape == (B, Z)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("width", [4, 16])
def test_encoder_and_discriminator_trunks_match(shape, width):
    e, d = Encoder(shape, 100, width, "shared_sigma"), Discriminator(shape, width)
    assert count_parameters(e.trunk) == count_parameters(d.trunk) > 0
    assert [tuple(p.shape) for p in e.trunk.parameters()] == [tuple(p.shape) for p in d.trunk.parameters()]
    assert str(e.trunk) == str(d.trunk)
    # DCGAN rules: batch norm in every trunk block but the first; the features end at 4 x 4
    bn = [any(isinstance(m, torch.nn.BatchNorm2d) for m in b) for b in d.trunk.blocks]
    assert bn == [False] + [True] * (len(bn) - 1)
    assert d.trunk.out_dim % 16 == 0


def test_docstring_parameter_table_is_what_the_nets_have():
    rows = re.findall(r"^\((\d), (\d+), \d+\)\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$",
                      gan_nets.__doc__, flags=re.M)
    assert len(rows) == 6
    for c, h, w, *counts in rows:
        if int(w) != 16 and int(h) == 64:
            continue  # the full-width 64 x 64 nets take a while to build; checked at 28 and 32
        got = parameter_counts((int(c), int(h), int(h)), int(w))
        keys = ("generator", "trunk", "encoder_shared_sigma", "discriminator", "joint_discriminator")
        assert [got[k] for k in keys] == [int(n.replace(",", "")) for n in counts], (c, h, w)


EXPECTED = {  # method -> player -> the top-level networks it updates
    "dcgan_vae": {"vae": {"encoder", "decoder"}},
    "dcgan": {"discriminator": {"discriminator"}, "generator": {"generator"}},
    "vaegan": {"encoder": {"encoder"}, "decoder": {"decoder"}, "discriminator": {"discriminator"}},
    "bigan": {"discriminator": {"discriminator"}, "generator": {"encoder", "generator"}},
    "avae": {"vae": {"encoder", "decoder"}, "discriminator": {"discriminator"}, "generator": {"generator"}},
}


def _changed(before, m):
    return {k.split(".")[0] for k, v in m.named_parameters() if not torch.equal(before[k], v.detach())}


@pytest.mark.parametrize("method", METHODS)
def test_players_update_exactly_their_networks(method):
    m = build(method, (1, 28, 28), z_dim=Z, width=W, noise_dim=2)
    assert {p: set(v) for p, v in m.players.items()} == EXPECTED[method]
    x = torch.rand(4, 1, 28, 28)
    # one player at a time, as fit steps it (others frozen, the player's own Adam): exactly its networks move,
    # and every parameter tensor of them moves (each gets a gradient)
    for player, nets in EXPECTED[method].items():
        before = _params(m)
        m.zero_grad(set_to_none=True)
        set_trainable(m, player)
        opt = torch.optim.Adam(m.player_parameters(player), lr=1e-2)
        opt.zero_grad()
        m.loss(player, x)["loss"].backward()
        frozen_grads = [k for k, p in m.named_parameters() if k.split(".")[0] not in nets and p.grad is not None]
        assert not frozen_grads, (player, frozen_grads[:3])
        opt.step()
        set_trainable(m, None)
        assert _changed(before, m) == nets, (method, player)
        unchanged = [k for k, v in m.named_parameters() if k.split(".")[0] in nets and torch.equal(before[k], v)]
        assert not unchanged, (method, player, unchanged[:3])
    # and the training loop itself: two iterations change every network, and nothing else
    before = _params(m)
    hist = fit(m, Fixed(x), steps=2, lr={p: 1e-3 for p in m.players}, log_every=1, progress=False)
    assert _changed(before, m) == set().union(*EXPECTED[method].values())
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(v)) for row in hist for v in row.values())


def test_avae_generator_step_keeps_the_encoder_but_uses_its_mean():
    m = build("avae", (1, 28, 28), z_dim=Z, width=W, noise_dim=2)
    x = torch.rand(4, 1, 28, 28)
    m.train()  # as in fit; the encoder's buffers stay too: it runs in eval mode in this step
    enc_state = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    set_trainable(m, "generator")
    opt = torch.optim.Adam(m.player_parameters("generator"), lr=1e-2)
    out = m.loss("generator", x)
    opt.zero_grad()
    out["loss"].backward()
    assert all(p.grad is None for p in m.encoder.parameters())
    opt.step()
    set_trainable(m, None)
    assert all(torch.equal(enc_state[k], v) for k, v in m.encoder.state_dict().items())

    # L_Z is mu_e of the current encoder (in eval mode) at G(z, xi), and it changes when the encoder changes
    z = torch.randn(5, Z)
    torch.manual_seed(3)
    t = m.generator_terms(z)
    with eval_mode(m.encoder):
        mu, log_sigma = m.encoder(t["x_hat"])
    assert torch.allclose(t["L_Z"], latent_reconstruction_loss(mu, z, log_sigma))
    # the gradient of L_Z alone reaches G through the (frozen) encoder
    set_trainable(m, "generator")
    torch.manual_seed(3)
    grads = torch.autograd.grad(m.generator_terms(z)["L_Z"].sum(), list(m.generator.parameters()))
    set_trainable(m, None)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    with torch.no_grad():
        m.encoder.head.weight.mul_(3.0)
    torch.manual_seed(3)
    t2 = m.generator_terms(z)
    assert torch.equal(t2["x_hat"], t["x_hat"]) and not torch.allclose(t2["L_Z"], t["L_Z"])
    m.lz_weight = 0.0  # without L_Z the generator loss is the adversarial term alone
    torch.manual_seed(3)
    assert torch.allclose(m.generator_terms(z)["loss"], t2["adv"])


def test_avae_reconstructions_are_the_generators():
    m = build("avae", (3, 32, 32), z_dim=Z, width=W, noise_dim=2).eval()
    x = torch.rand(3, 3, 32, 32)
    torch.manual_seed(1)
    r = m.reconstruct(x, use_mean=True)
    torch.manual_seed(1)
    xi = torch.randn(3, 2)
    with torch.no_grad():
        assert torch.allclose(r, m.generator(m.encoder(x)[0], xi))
        assert torch.allclose(m.reconstruct_vae(x, use_mean=True), m.decoder(m.encoder(x)[0]))
    assert m.reconstruct(x).shape == x.shape and m.sample(5).shape == (5, 3, 32, 32)


@pytest.mark.parametrize("method", METHODS)
def test_sample_and_reconstruct(method):
    m = build(method, (1, 28, 28), z_dim=Z, width=W, noise_dim=2).eval()
    s = m.sample(4)
    assert s.shape == (4, 1, 28, 28) and ((s > 0) & (s < 1)).all()
    x = torch.rand(2, 1, 28, 28)
    if method == "dcgan":
        with pytest.raises(NotImplementedError, match="no encoder"):
            m.reconstruct(x)
        with pytest.raises(NotImplementedError, match="no encoder"):
            m.encode(x)
    else:
        r = m.reconstruct(x)
        assert r.shape == x.shape and ((r > 0) & (r < 1)).all()


def test_vaegan_reconstruction_is_measured_in_discriminator_features():
    m = build("vaegan", (1, 28, 28), z_dim=Z, width=W)
    x = torch.rand(4, 1, 28, 28)

    def enc_loss():
        torch.manual_seed(5)
        return m.loss("encoder", x)

    base = enc_loss()
    with torch.no_grad():
        m.discriminator.head.weight.mul_(5)  # the logit layer is not Dis_l: the encoder's loss ignores it
    assert torch.allclose(enc_loss()["loss"], base["loss"])
    with torch.no_grad():
        m.discriminator.trunk.blocks[-1][0].weight.mul_(2)  # Dis_l = the last trunk conv: the reconstruction doubles
    assert torch.allclose(enc_loss()["rec_dis"], 4 * base["rec_dis"], rtol=1e-4)
    # the decoder's adversarial term: non-saturating by default, the paper's minimax -L_GAN on request
    torch.manual_seed(6)
    ns = m.loss("decoder", x)
    m.decoder_gan, m.gamma = "minimax", 0.0
    torch.manual_seed(6)
    mm = m.loss("decoder", x)
    assert float(ns["gan"]) > 0 > float(mm["gan"]) and torch.allclose(mm["loss"], mm["gan"])


def test_features_and_logits_is_one_pass_of_features_and_forward():
    torch.manual_seed(0)
    d = Discriminator((1, 28, 28), W)
    for mode in (d.eval, d.train):  # train mode: batch statistics of this batch in both computations
        mode()
        x = torch.rand(6, 1, 28, 28)
        for layer in (None, *range(1, len(d.trunk.blocks) + 1)):
            f, logits = d.features_and_logits(x, layer)
            assert torch.allclose(f, d.features(x, layer), atol=1e-6) and torch.allclose(logits, d(x), atol=1e-6)
    with pytest.raises(ValueError, match="layer"):
        d.features_and_logits(x, layer=0)
    with pytest.raises(ValueError, match="alone"):
        Discriminator((1, 28, 28), W, z_dim=Z).features_and_logits(x)


def test_vaegan_discriminator_batches_joint_or_separate():
    """"joint": real, reconstructed and prior batches share one batch-norm pass (their code); "separate": one pass per
    batch (the DCGAN convention of the other baselines) -- the discriminator's loss equals the sum of three per-batch
    evaluations, and differs from the joint pass in training mode (batch statistics differ)."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    m = build("vaegan", (1, 28, 28), z_dim=Z, width=W, dis_batches="separate").train()
    x = torch.rand(5, 1, 28, 28)
    torch.manual_seed(1)
    sep = m.loss("discriminator", x)["loss"]
    torch.manual_seed(1)
    with torch.no_grad():
        x_tilde, x_p = m.decoder(m.encoder.sample(x)), m.decoder(m.draw_z(5))
    d = m.discriminator
    expected = F.softplus(-d(x)).mean() + F.softplus(d(x_tilde)).mean() + F.softplus(d(x_p)).mean()
    assert torch.allclose(sep, expected, atol=1e-5)
    m.dis_batches = "joint"
    torch.manual_seed(1)
    joint = m.loss("discriminator", x)["loss"]
    assert not torch.allclose(joint, sep, atol=1e-3)
    with pytest.raises(ValueError, match="dis_batches"):
        build("vaegan", (1, 28, 28), z_dim=Z, width=W, dis_batches="mixed")


def test_vaegan_beta_weights_the_encoders_kl():
    """The encoder's loss is beta KL + the feature reconstruction, each term computed independently here."""
    x = torch.rand(4, 1, 28, 28)
    for beta in (1.0, 0.0625):
        torch.manual_seed(0)
        m = build("vaegan", (1, 28, 28), z_dim=Z, width=W, beta=beta)
        torch.manual_seed(3)
        out = m.loss("encoder", x)
        torch.manual_seed(3)
        mu, sigma = m.encoder(x)
        z = mu + sigma * torch.randn_like(mu)
        x_tilde = m.decoder(z)
        f_x, f_t = m.discriminator.features(x), m.discriminator.features(x_tilde)
        kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma),
                                               torch.distributions.Normal(0.0, 1.0)).sum(1)
        rec = 0.5 * (f_t - f_x).pow(2).sum(1)
        assert torch.allclose(out["loss"], (beta * kl + rec).mean(), rtol=1e-4)


def test_conv_vae_codes_carry_information_on_a_two_pattern_batch():
    """Two patterns (top or bottom half lit), four copies each: without information in z the best reconstruction is
    the pixel mean, 1/2 * 784 * 0.25 = 98 per image; a working encoder-decoder gets far below it in 40 steps."""
    torch.manual_seed(0)
    m = build("dcgan_vae", (1, 28, 28), z_dim=Z, width=W)
    x = torch.zeros(8, 1, 28, 28)
    x[:4, :, :14], x[4:, :, 14:] = 1, 1
    hist = fit(m, Fixed(x), steps=40, lr={"vae": 1e-2}, log_every=10, progress=False)
    assert hist[-1]["vae/rec"] < 0.5 * 98, [h["vae/rec"] for h in hist]


def test_validation_errors():
    for bad in [(1, 28, 27), (3, 48, 48), (28, 28), (0, 32, 32)]:
        with pytest.raises(ValueError, match="unsupported image shape"):
            Generator(Z, bad)
        with pytest.raises(ValueError, match="unsupported image shape"):
            DownTrunk(bad)
    with pytest.raises(ValueError, match="width"):
        Discriminator((1, 28, 28), width=0)
    with pytest.raises(ValueError, match="kind"):
        Encoder((1, 28, 28), Z, W, kind="flow")
    with pytest.raises(ValueError, match="xi"):
        Generator(Z, (1, 28, 28), noise_dim=2, width=W)(torch.randn(2, Z))
    with pytest.raises(ValueError, match="needs z"):
        Discriminator((1, 28, 28), W, z_dim=Z)(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="images of shape"):
        Discriminator((1, 28, 28), W)(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="layer"):
        DownTrunk((1, 28, 28), W).features(torch.rand(2, 1, 28, 28), layer=4)
    g, d = Generator(Z, (1, 28, 28), 2, W), Discriminator((1, 28, 28), W)
    dec, gauss = Generator(Z, (1, 28, 28), 0, W), Encoder((1, 28, 28), Z, W, "gaussian")
    with pytest.raises(ValueError, match="shared_sigma"):
        AVAE(gauss, dec, g, d)
    shared = Encoder((1, 28, 28), Z, W, "shared_sigma")
    with pytest.raises(ValueError, match="L_Z variant"):
        AVAE(shared, dec, g, d, lz_variant="paper")
    with pytest.raises(ValueError, match="beta and lz_weight"):
        AVAE(shared, dec, g, d, lz_weight=-1)
    with pytest.raises(ValueError, match="noise_dim"):
        AVAE(shared, g, g, d)
    with pytest.raises(ValueError, match="deterministic"):
        BiGAN(gauss, dec, Discriminator((1, 28, 28), W, Z))
    with pytest.raises(ValueError, match="joint"):
        BiGAN(Encoder((1, 28, 28), Z, W, "deterministic"), dec, d)
    with pytest.raises(ValueError, match="decoder_gan"):
        VAEGAN(gauss, dec, d, decoder_gan="wgan")
    with pytest.raises(ValueError, match="rec_layer"):
        VAEGAN(gauss, dec, d, rec_layer=0)
    with pytest.raises(ValueError, match="z_dim = 0"):
        GAN(dec, Discriminator((1, 28, 28), W, Z))
    with pytest.raises(ValueError, match="gaussian"):
        ConvVAE(Encoder((1, 28, 28), Z, W, "deterministic"), dec)
    with pytest.raises(ValueError, match="unknown method"):
        build("wgan", (1, 28, 28), z_dim=Z)
    with pytest.raises(KeyError, match="players"):
        build("dcgan", (1, 28, 28), z_dim=Z, width=W).loss("encoder", torch.rand(2, 1, 28, 28))


@pytest.mark.parametrize("shape", SHAPES[1:], ids=["cifar10", "celeba64"])
@pytest.mark.parametrize("method", METHODS)
def test_notebook_41_pipeline_on_random_tensors_of_the_other_datasets_shapes(method, shape):
    """What notebook 41 does with DATASET=cifar10 / celeba64 (data absent offline): train through fit from a
    device-resident sampler, then sample and reconstruct, on random images of those shapes."""
    from lib.data import BatchSampler
    from lib.reconstruction_metrics import reconstruction_errors

    torch.manual_seed(0)
    m = build(method, shape, z_dim=Z, width=W, noise_dim=2)
    hist = fit(m, BatchSampler(torch.rand(16, *shape), 4, dynamic_binarization=False), steps=2,
               lr={p: 2e-4 for p in m.players}, betas=(0.5, 0.999), log_every=1, progress=False)
    assert len(hist) == 2
    s = m.sample(3)
    assert s.shape == (3, *shape) and ((s >= 0) & (s <= 1)).all()
    if method != "dcgan":
        x = torch.rand(3, *shape)
        assert 0 < reconstruction_errors(x, m.reconstruct(x))["mse"]["value"] < 1


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_of_the_wrong_shape_or_dtype_is_a_clear_error(method):
    m = build(method, (1, 28, 28), z_dim=Z, width=W, noise_dim=2)
    player = next(iter(m.players))
    with pytest.raises(ValueError, match=r"expects x of shape \(B, 1, 28, 28\), got \(4, 784\)"):
        m.loss(player, torch.rand(4, 784))
    with pytest.raises(TypeError, match="floating-point pixels"):
        m.loss(player, torch.zeros(4, 1, 28, 28, dtype=torch.uint8))

"""BAVAE: the f-GAN KL bound's optimum and value, the bounded discriminators, the players and the games' samples."""
import math

import pytest
import torch
import torch.distributions as D

from lib import registry
from lib.bavae import BAVAE, bounded
from lib.losses import kl_fgan_objective
from lib.nets import GaussianDecoder, ImplicitDecoder
from lib.toys import FourPointSampler
from lib.train import fit


def _maximise_table(P, Q, parametrise=lambda v: v):
    """Free table T = parametrise(v) on a discrete space, exact expectations, maximised by LBFGS (float64)."""
    v = torch.zeros_like(P, requires_grad=True)
    opt = torch.optim.LBFGS([v], lr=1, max_iter=1000, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -kl_fgan_objective(parametrise(v), parametrise(v), P, Q)
        loss.backward()
        return loss

    opt.step(closure)
    t = parametrise(v).detach()
    return t, float(kl_fgan_objective(t, t, P, Q))


def _two_tables(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g, dtype=torch.float64).softmax(0),
            (2 * torch.rand(n, generator=g, dtype=torch.float64)).softmax(0))


def test_fgan_kl_bound_is_maximised_at_one_plus_log_ratio_with_value_kl():
    P, Q = _two_tables()
    t, value = _maximise_table(P, Q)
    kl = float(D.kl_divergence(D.Categorical(probs=P), D.Categorical(probs=Q)))
    assert (t - (1 + (P / Q).log())).abs().max() < 1e-6
    assert abs(value - kl) < 1e-10
    # any other T gives less: the logistic-GAN optimum log P/Q (no +1) gives E_P log P/Q - E_Q[(P/Q) / e] = KL - 1/e
    wrong = (P / Q).log()
    gap = kl - float(kl_fgan_objective(wrong, wrong, P, Q))
    assert abs(gap - 1 / torch.e) < 1e-10
    # and the reverse direction's optimum is not this one's
    assert (t - (1 + (Q / P).log())).abs().max() > 0.1


def test_bounded_discriminator_gives_the_clipped_optimum_and_a_lower_bound():
    g = torch.Generator().manual_seed(1)
    P, Q = ((4 * torch.rand(12, generator=g, dtype=torch.float64)).softmax(0) for _ in range(2))
    t_star = 1 + (P / Q).log()
    t_max = float(t_star.median())  # about half the points are constrained
    v = torch.linspace(-50, 50, 11)
    assert (bounded(v, 3.0) <= 3.0).all() and abs(float(bounded(torch.tensor(-20.0), 3.0)) + 20) < 1e-8
    # bounded() maps R onto (-inf, t_max), so the optimum is min(T*, t_max): exact below the bound, -> t_max above it
    t, value = _maximise_table(P, Q, lambda v: bounded(v, t_max))
    free, capped = t_star < t_max - 0.1, t_star > t_max
    assert free.sum() >= 3 and capped.sum() >= 3
    assert (t[free] - t_star[free]).abs().max() < 1e-5
    assert (t <= t_max).all() and (t_max - t[capped]).max() < 0.05
    # a restricted family still gives a lower bound on the KL, strictly below it when the bound binds
    kl = float(D.kl_divergence(D.Categorical(probs=P), D.Categorical(probs=Q)))
    clipped = torch.minimum(t_star, torch.tensor(t_max, dtype=torch.float64))
    assert value < kl - 1e-3 and value <= float(kl_fgan_objective(clipped, clipped, P, Q)) + 1e-12


def _bavae(method="bavae", **kw):
    return registry.build(method, x_shape=(4,), z_dim=2, hidden=(16,), adversary_hidden=(16,), noise_dim=3,
                          decoder_noise_dim=2, **kw)


def test_game_samples_pair_data_codes_and_generated_images():
    m = _bavae()
    x = torch.rand(8, 4)
    torch.manual_seed(0)
    s = m.game_samples(x)
    assert torch.equal(s["z_agg"], s["z_q"].roll(1, dims=0))  # q(z): codes of *other* data points
    assert s["x_gen"].shape == x.shape and ((s["x_gen"] > 0) & (s["x_gen"] < 1)).all()
    assert s["z_p"].shape == s["z_q"].shape
    # the primal loss is differentiable in encoder and decoder through every sample
    out = m.loss("primal", x)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.encoder.parameters()) and all(p.grad is not None for p in m.decoder.parameters())


@pytest.mark.parametrize("method,discriminators", [("bavae", {"T_psi", "D_omega"}), ("bavae_h", {"T_psi", "D_omega", "S_chi"})])
def test_players_update_exactly_their_networks(method, discriminators):
    m = _bavae(method)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fit(m, FourPointSampler(32), steps=3, lr={"discriminators": 1e-2, "primal": 1e-2}, progress=False)
    changed = {k.split(".")[0] for k, v in m.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"encoder", "decoder", *discriminators}, changed
    assert set(m.players["discriminators"]) == discriminators


def test_entropy_treatment_chooses_the_encoder_objective():
    x = torch.rand(16, 4)
    for method, second in (("bavae", "V_I"), ("bavae_h", "V_M")):
        m = _bavae(method)
        torch.manual_seed(1)
        out = m.loss("primal", x)
        assert torch.allclose(out["loss"].detach(), out["V_G"] + out[second]), method
        torch.manual_seed(1)
        d = m.loss("discriminators", x)  # the discriminators maximise every game they play
        assert torch.allclose(d["loss"].detach(), -sum(v for k, v in d.items() if k.startswith("V_")))


def test_nonsaturating_generator_loss_replaces_the_exponential_on_generated_pairs():
    x = torch.rand(16, 4)
    m = _bavae(generator_loss="nonsaturating")
    torch.manual_seed(2)
    out = m.loss("primal", x)
    # V_G = E D(pos) - E e^{D(neg) - 1} becomes E D(pos) - E D(neg); V_I is unchanged
    assert torch.allclose(out["loss"].detach(), out["D_pos"] - out["D_neg"] + out["V_I"], atol=1e-6)
    assert not torch.allclose(out["loss"].detach(), out["V_G"] + out["V_I"], atol=1e-3)


def test_validation_errors():
    m = _bavae()
    with pytest.raises(ValueError, match="entropy"):
        BAVAE(m.encoder, m.decoder, m.T_psi, m.D_omega, entropy="kept")
    with pytest.raises(ValueError, match="S_chi"):
        BAVAE(m.encoder, m.decoder, m.T_psi, m.D_omega, entropy="restored")
    with pytest.raises(ValueError, match="generator_loss"):
        BAVAE(m.encoder, m.decoder, m.T_psi, m.D_omega, generator_loss="wgan")
    with pytest.raises(ValueError, match="t_max"):
        BAVAE(m.encoder, m.decoder, m.T_psi, m.D_omega, t_max=0.5)
    with pytest.raises(ValueError, match="noise_dim"):
        ImplicitDecoder(2, (4,), noise_dim=0)
    with pytest.raises(KeyError, match="players"):
        m.loss("adversary", torch.zeros(2, 4))


def test_implicit_decoder_is_a_reparameterised_sampler():
    dec = ImplicitDecoder(2, (1, 28, 28), arch="conv", noise_dim=3)
    z = torch.randn(5, 2, requires_grad=True)
    x1, x2 = dec.sample(z), dec.sample(z)
    assert x1.shape == (5, 1, 28, 28) and not torch.equal(x1, x2)  # xi makes p(x|z) non-degenerate
    assert torch.equal(dec(z, torch.zeros(5, 3)), dec(z, torch.zeros(5, 3)))
    (g,) = torch.autograd.grad(x1.sum(), z)
    assert g.abs().sum() > 0


def test_fixed_scale_gaussian_decoder_is_the_l2_likelihood():
    dec = GaussianDecoder(2, (1, 28, 28), arch="conv", std=0.1)
    z, x = torch.randn(3, 2), torch.rand(3, 1, 28, 28)
    mean, scale = dec(z)
    assert (scale == 0.1).all()
    expected = D.Normal(mean, 0.1).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(dec.log_prob(x, z), expected)
    # = -||x - mean||^2 / (2 sigma^2) - D log(sigma sqrt(2 pi)): the L2 reconstruction loss plus a closed-form constant
    l2 = (x - mean).pow(2).flatten(1).sum(1) / (2 * 0.1 ** 2)
    const = -784 * math.log(0.1 * math.sqrt(2 * math.pi))
    assert torch.allclose(dec.log_prob(x, z) + l2, torch.full((3,), const), atol=1e-3)
    with pytest.raises(ValueError, match="std"):
        GaussianDecoder(2, (4,), std=0.0)


@pytest.mark.parametrize("method", ["vae", "bavae", "bavae_h"])
def test_full_profile_networks_take_a_training_step_on_mnist_shapes(method):
    """Notebook 31's full-profile models (AVB's convolutional nets) build and train on (B, 1, 28, 28) images."""
    kw = dict(likelihood="gaussian", decoder_std=0.1) if method == "vae" else {}
    m = registry.build(method, x_shape=(1, 28, 28), z_dim=8, arch="conv", hidden=(256, 256), adversary_hidden=(64, 64),
                       noise_dim=4, decoder_noise_dim=4, **kw)
    lr = {"model": 1e-3} if method == "vae" else {"primal": 1e-3, "discriminators": 1e-3}

    class Images:
        def next(self):
            return torch.rand(4, 1, 28, 28)

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    hist = fit(m, Images(), steps=2, lr=lr, log_every=1, progress=False)
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(v)) for row in hist for v in row.values())
    if method != "vae":
        x = m.reconstruct(torch.rand(3, 1, 28, 28))
        assert x.shape == (3, 1, 28, 28) and ((x > 0) & (x < 1)).all()


def test_bounded_is_at_most_t_max_and_reaches_it_in_float32():
    """The documented guarantee is <= t_max: softplus(t_max - v) underflows once v exceeds t_max by a few tens, so in
    float32 bounded(30, 10) is exactly 10 (a '<' promise would be false); below t_max it is strictly below."""
    from lib.bavae import bounded

    v = torch.tensor([-50.0, 0.0, 9.0, 10.0, 30.0, 1e4])
    out = bounded(v, 10.0)
    assert (out <= 10.0).all() and float(out[4]) == 10.0
    assert (out[:3] < 10.0).all()
    assert float(out[0]) == pytest.approx(-50.0, abs=1e-6)  # ~ identity well below the bound

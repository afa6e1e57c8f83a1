"""Closed forms for the VAE and AVB objectives, checked at small scale."""
import math

import pytest
import torch
import torch.distributions as D

from lib import registry
from lib.avb import AVB, adversary_loss
from lib.nets import Adversary, MLPTrunk, MomentEncoder


def test_vae_kl_is_the_closed_form():
    vae = registry.build("vae", x_shape=(6,), z_dim=3, hidden=(16,))
    x = torch.bernoulli(torch.full((5, 6), 0.5))
    t = vae.elbo_terms(x)
    q = vae.encoder(x)
    mu, s = q.base_dist.loc, q.base_dist.scale
    closed = 0.5 * (mu**2 + s**2 - 1 - 2 * s.log()).sum(1)  # KL(N(mu, s^2) || N(0, I)), independent formula
    torch.testing.assert_close(t["kl"], closed)
    torch.testing.assert_close(t["elbo"], t["rec"] - t["kl"])
    assert t["elbo"].shape == (5,) and (t["rec"] <= 0).all()


def test_adversary_loss_optimum_is_the_log_density_ratio():
    """A free table T(z) on 5 states minimising ``adversary_loss`` on fixed samples must equal
    log P^(z) - log Q^(z) for the samples' frequencies (AVB Prop. 1); a sign error gives the negative."""
    g = torch.Generator().manual_seed(1)
    P, Q = torch.rand(5, generator=g) + 0.1, torch.rand(5, generator=g) + 0.1
    z_q = torch.multinomial(P / P.sum(), 20_000, replacement=True, generator=g)  # "posterior" samples
    z_p = torch.multinomial(Q / Q.sum(), 20_000, replacement=True, generator=g)  # "prior" samples
    P_hat, Q_hat = torch.bincount(z_q, minlength=5) / 20_000.0, torch.bincount(z_p, minlength=5) / 20_000.0
    T = torch.zeros(5, requires_grad=True)
    opt = torch.optim.LBFGS([T], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = adversary_loss(T[z_q], T[z_p])
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(T.detach(), (P_hat / Q_hat).log(), atol=1e-3, rtol=0)
    assert (P_hat / Q_hat).log().abs().max() > 0.1  # the check distinguishes T* from -T* and from 0


def test_adversary_loss_matches_its_definition():
    t_q, t_p = torch.randn(100), torch.randn(100)
    ref = -(torch.sigmoid(t_q).log().mean() + (1 - torch.sigmoid(t_p)).log().mean())
    torch.testing.assert_close(adversary_loss(t_q, t_p), ref)


def test_adversary_has_the_analytic_prior_term():
    adv = Adversary(4, 3, hidden=(8,))
    x, z = torch.rand(7, 4), torch.randn(7, 3)
    adv.analytic_prior = False
    base = adv(x, z)
    adv.analytic_prior = True
    torch.testing.assert_close(adv(x, z) - base, 0.5 * z.pow(2).sum(1))


def test_moment_encoder_moments_match_monte_carlo():
    enc = MomentEncoder(MLPTrunk(6, [16]), z_dim=3, n_basis=4, noise_dim=5, n_moment_samples=200_000)
    x = torch.rand(2, 6)
    with torch.no_grad():
        _, mean, std = enc.sample_with_moments(x)
        z = enc.sample(x.repeat(4000, 1)).view(4000, 2, 3)  # independent draws
    se = z.std(0) / math.sqrt(4000)
    assert ((z.mean(0) - mean).abs() < 5 * se).all()
    torch.testing.assert_close(z.std(0), std, rtol=0.06, atol=0)


def test_adaptive_contrast_with_zero_adversary_is_the_gaussian_kl():
    """With T = 0 (its optimum when q is Gaussian), the AC estimate T + log r - log p averaged over q
    is KL(r || p) for the moment-matched Gaussian r: compare with torch.distributions' closed form."""
    model = registry.build("avb_ac", x_shape=(6,), z_dim=3, hidden=(16,), adversary_hidden=(8,))
    for p in model.adversary.parameters():
        torch.nn.init.zeros_(p)
    model.adversary.analytic_prior = False
    x = torch.rand(1, 6).expand(20_000, 6)
    with torch.no_grad():
        c = model.codes(x)
        est = model.kl_estimate(x, c)
    r = D.Independent(D.Normal(c["mean"][0], c["std"][0]), 1)
    closed = D.kl_divergence(r, D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1))
    # q is not exactly Gaussian (a sum of 4 noise nets), so E_q log r - E_q log p differs from KL(r||p) only
    # through E_q of quadratics, which depend on q's first two moments alone: they are equal.
    assert est.mean().item() == pytest.approx(closed.item(), abs=5 * est.std().item() / math.sqrt(20_000))


def test_avb_needs_moment_encoder_for_ac_and_names_players():
    m = registry.build("avb", x_shape=(4,), z_dim=2, hidden=(8,), adversary_hidden=(8,))
    with pytest.raises(ValueError, match="MomentEncoder"):
        AVB(m.encoder, m.decoder, m.adversary, adaptive_contrast=True)
    with pytest.raises(KeyError, match="players"):
        m.loss("generator", torch.rand(2, 4))
    with pytest.raises(ValueError, match="unknown method"):
        registry.build("avbx", x_shape=(4,), z_dim=2)


@pytest.mark.parametrize("method", ["vae", "avb", "avb_ac"])
def test_full_profile_conv_networks_have_the_right_shapes(method):
    """The paper-scale (conv) networks of the full profile build, run and give per-example terms."""
    m = registry.build(method, x_shape=(1, 28, 28), z_dim=8, arch="conv", adversary_hidden=(32, 32),
                       adversary_kind="inner")
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3))
    assert m.decoder(torch.randn(3, 8)).shape == (3, 1, 28, 28)
    t = m.elbo_terms(x)
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in t.values())
    for player in m.players:
        out = m.loss(player, x)
        out["loss"].backward()
        assert torch.isfinite(out["loss"])
    with pytest.raises(ValueError, match="x_shape"):
        registry.build(method, x_shape=(3, 32, 32), z_dim=8, arch="conv")

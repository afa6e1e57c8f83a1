"""Bits/dim and the discretised 8-bit likelihood (AS-VAE's protocol) against closed forms."""
import math

import pytest
import torch
import torch.distributions as D

from lib.evaluate import bits_per_dim, dequantize, dequantized_log_px_bound, discretized_log_prob


def _phi(t: float) -> float:
    return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))


def test_bits_per_dim_of_uniform_and_coin():
    assert bits_per_dim(torch.tensor(-784 * math.log(256)), 784).item() == pytest.approx(8.0, abs=1e-9)
    assert bits_per_dim(-784 * math.log(2), 784) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="n_dims"):
        bits_per_dim(-1.0, 0)


def test_discretized_normal_matches_erf_closed_form_and_sums_to_one():
    mu, sigma = 0.37, 0.08
    levels = torch.arange(256, dtype=torch.float64).view(256, 1)  # 256 "images" of one pixel each
    dist = D.Normal(torch.full((256, 1), mu, dtype=torch.float64), torch.full((256, 1), sigma, dtype=torch.float64))
    logp = discretized_log_prob(dist, levels)
    # independent closed form with math.erf; edge bins open to -inf / +inf
    ref = []
    for i in range(256):
        lo = 0.0 if i == 0 else _phi((i / 256 - mu) / sigma)
        hi = 1.0 if i == 255 else _phi(((i + 1) / 256 - mu) / sigma)
        ref.append(math.log(hi - lo) if hi - lo > 1e-10 else math.nan)  # erf differences lose digits below
    ref = torch.tensor(ref, dtype=torch.float64)
    ok = ~torch.isnan(ref)
    assert ok.sum() > 30
    assert torch.allclose(logp[ok], ref[ok], atol=1e-7, rtol=1e-7)
    assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-9)
    # a sign error in the bin edges (bins [(i-1)/256, i/256)) would shift the mode by one level
    assert int(logp.argmax()) == int(mu * 256)


def test_far_tail_bins_stay_finite_and_close_to_density_times_width():
    dist = D.Normal(torch.tensor([[0.05]]), torch.tensor([[0.002]]))
    logp = discretized_log_prob(dist, torch.tensor([[200.0]]))  # ~ 360 sds away: mass underflows
    approx = dist.log_prob(torch.tensor([[200.5 / 256]])) - math.log(256)
    assert torch.isfinite(logp).all() and float(logp) == pytest.approx(float(approx.sum()), rel=1e-6)


def test_dequantised_density_bound_is_below_the_discrete_likelihood():
    """Jensen: E_u[log p((x+u)/256)] - D log 256 <= log P(x) for the same continuous model. For a Normal,
    E_u is closed-form (log N is quadratic in y: E(y - mu)^2 = (c - mu)^2 + w^2/12 over a bin of centre c,
    width w); the Monte Carlo dequantised estimate must agree with it, and for a density constant within
    bins the bound is an equality."""
    torch.manual_seed(0)
    B, Dm = 8, 20
    x = torch.randint(1, 255, (B, Dm)).double()  # interior levels: the open edge bins hold extra tail mass
    mean, std = 0.2 + 0.6 * torch.rand(B, Dm, dtype=torch.float64), 0.05 + 0.1 * torch.rand(B, Dm, dtype=torch.float64)
    dist = D.Normal(mean, std)
    exact = discretized_log_prob(dist, x)
    w, c = 1 / 256, (x + 0.5) / 256
    e_log_density = (-0.5 * torch.log(2 * math.pi * std**2) - ((c - mean) ** 2 + w**2 / 12) / (2 * std**2)).sum(1)
    bound = dequantized_log_px_bound(e_log_density, Dm)
    assert (bound < exact).all()
    assert (exact - bound).max() < 0.05  # Jensen gap ~ D w^2 / (24 std^2) ~ 0.005 nats here: tight
    g = torch.Generator().manual_seed(1)
    mc = torch.stack([dequantized_log_px_bound(dist.log_prob(dequantize(x, g).double()).sum(1), Dm)
                      for _ in range(2000)])
    assert torch.allclose(mc.mean(0), bound, atol=4 * float(mc.std(0).max()) / math.sqrt(2000))
    # equality for the uniform density on [0, 1]: every bin has mass 1/256
    u = D.Uniform(torch.zeros(B, Dm, dtype=torch.float64), torch.ones(B, Dm, dtype=torch.float64))
    y = dequantize(x, g).double()
    assert torch.allclose(dequantized_log_px_bound(u.log_prob(y).sum(1), Dm),
                          torch.full((B,), -Dm * math.log(256), dtype=torch.float64))


def test_dequantize_range_and_bad_input():
    x = torch.tensor([0, 17, 255], dtype=torch.uint8)
    y = dequantize(x, torch.Generator().manual_seed(0))
    assert ((y >= x.float() / 256) & (y < (x.float() + 1) / 256)).all()
    with pytest.raises(ValueError, match="integer grey levels"):
        dequantize(torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        discretized_log_prob(D.Normal(torch.zeros(1, 1), 1.0), torch.tensor([[256.0]]))
    with pytest.raises(ValueError, match="batch_shape"):
        discretized_log_prob(D.Normal(torch.zeros(2, 1), 1.0), torch.zeros(1, 1))

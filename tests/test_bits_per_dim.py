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


def _mp_log_bin_masses(mu: float, sigma: float, n_bins: int = 256) -> list[float]:
    """Independent reference: log P(bin i) of N(mu, sigma^2) for every level, edge bins open, with mpmath at 60
    digits (erfc of the far side of each bin, so no digits are lost to 1 - Phi; mpmath's exponent range is
    unbounded, so bins of mass e^-1e11 are still exact)."""
    import mpmath as mp

    mp.mp.dps = 60
    mu, sigma, out = mp.mpf(mu), mp.mpf(sigma), []
    for i in range(n_bins):
        a = mp.ninf if i == 0 else (mp.mpf(i) / n_bins - mu) / sigma
        b = mp.inf if i == n_bins - 1 else (mp.mpf(i + 1) / n_bins - mu) / sigma
        r2 = mp.sqrt(2)
        if a >= 0:      # upper tail: Phi(b) - Phi(a) = (erfc(a/r2) - erfc(b/r2)) / 2
            mass = (mp.erfc(a / r2) - mp.erfc(b / r2)) / 2
        elif b <= 0:    # lower tail
            mass = (mp.erfc(-b / r2) - mp.erfc(-a / r2)) / 2
        else:           # straddles the mean
            mass = 1 - mp.erfc(-a / r2) / 2 - mp.erfc(b / r2) / 2
        out.append(float(mp.log(mass)))
    return out


@pytest.mark.parametrize("mu, sigma", [(0.37, 0.06), (0.81, 0.11), (0.5, 1e-4), (0.2, 1e-6), (0.0, 0.003),
                                       (1.0, 0.5), (0.5, 10.0), (-0.3, 0.05), (1.3, 0.05), (0.05, 0.002)])
def test_discretized_normal_every_level_against_60_digit_mpmath(mu, sigma):
    """Every bin, including far-tail bins (masses far below float32's 2^-25 resolution of 1 - Phi, where a difference
    of CDFs used to snap to log 2^-25 = -17.33) and scales far below one bin width (1e-6 = 1/3900 of a bin)."""
    levels = torch.arange(256, dtype=torch.float64).view(256, 1)
    ref = torch.tensor(_mp_log_bin_masses(mu, sigma), dtype=torch.float64)
    full = lambda v: torch.full((256, 1), v, dtype=torch.float64)  # noqa: E731
    got = discretized_log_prob(D.Normal(full(mu), full(sigma)), levels)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-9), float((got - ref).abs().max())
    assert float(torch.logsumexp(got, 0)) == pytest.approx(0.0, abs=1e-9)
    # float32 parameters and uint8 levels: the same values to float32 rounding
    got32 = discretized_log_prob(D.Normal(full(mu).float(), full(sigma).float()), levels.to(torch.uint8))
    assert got32.dtype == torch.float32
    mu32, s32 = float(torch.tensor(mu, dtype=torch.float32)), float(torch.tensor(sigma, dtype=torch.float32))
    ref32 = torch.tensor(_mp_log_bin_masses(mu32, s32), dtype=torch.float64)
    assert torch.allclose(got32.double(), ref32, rtol=1e-6, atol=1e-5)


def test_discretized_log_prob_reported_cases():
    """The two cases that were wrong: a tail bin in float32 (was -17.3287: float32 CDFs snap to multiples of 2^-25)
    and the open lower edge bin (was -31.24: the density at the bin centre times the width, not the mass of
    (-inf, 1/256))."""
    got = discretized_log_prob(D.Normal(torch.tensor([[0.37]]), torch.tensor([[0.06]])),
                               torch.tensor([[9]], dtype=torch.uint8))
    assert float(got) == pytest.approx(_mp_log_bin_masses(0.37, 0.06)[9], abs=1e-4)
    assert float(got) == pytest.approx(-19.0366, abs=1e-3)
    got = discretized_log_prob(D.Normal(torch.tensor([[0.81]]), torch.tensor([[0.11]])),
                               torch.tensor([[0]], dtype=torch.uint8))
    exact = float(torch.special.log_ndtr(torch.tensor((1 / 256 - 0.81) / 0.11, dtype=torch.float64)))
    assert float(got) == pytest.approx(exact, abs=1e-4) and exact == pytest.approx(-29.78, abs=0.01)
    with pytest.raises(TypeError, match="Normal"):
        discretized_log_prob(D.Laplace(torch.zeros(1, 1), torch.ones(1, 1)), torch.zeros(1, 1))


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
    # The Jensen gap per pixel: log p is linear in the offset t within a bin up to a curvature of order w^2 / sigma^2,
    # so gap = log E_t exp(-g t) + g-free curvature terms = log(sinh(h) / h), h = |g| w / 2, g = (c - mu) / sigma^2.
    h = ((c - mean) / std**2).abs() * w / 2
    assert torch.allclose(exact - bound, torch.log(torch.sinh(h) / h).sum(1), rtol=2e-3)
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

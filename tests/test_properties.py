"""Property tests (hypothesis) of the objectives and likelihood estimators.

* finite values on extreme but valid inputs: discriminator logits of +-1e4, pixels exactly 0 or 1 against decoder
  logits of +-1e4, encoder scales near 0 and 1;
* batch-size independence: every loss is a mean of per-example values, so duplicating a batch leaves it unchanged
  (a sum, or a mean over pixels against a per-example term, would not);
* log-likelihood estimates of binary data are never above 0 (p(x) <= 1 for a discrete x).

Examples are few and derandomised (fixed across runs, no example database): this file runs in a few seconds.
"""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.avae import generator_loss, latent_reconstruction_loss
from lib.avb import adversary_loss
from lib.bavae import bounded
from lib.losses import discriminator_loss, gaussian_kl, kl_fgan_objective, vae_loss
from lib.nets import BernoulliDecoder

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)
SLOW = settings(max_examples=6, deadline=None, derandomize=True, database=None)

EXTREME = 1e4
logit = st.floats(-EXTREME, EXTREME, allow_nan=False, width=32)
logits = st.lists(logit, min_size=1, max_size=16).map(lambda v: torch.tensor(v))
# logit vectors with their extremes guaranteed present
saturated = st.tuples(logits, st.sampled_from([EXTREME, -EXTREME])).map(lambda t: torch.cat([t[0], torch.tensor([t[1]])]))


def _dup(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([t, t])


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------- logistic discriminators
@FAST
@given(saturated, saturated)
def test_logistic_losses_are_finite_nonnegative_and_batch_size_free(t_pos, t_neg):
    """AVB's adversary (Eq. 3.3) and the logistic discriminators of AS-VAE, GAN, BiGAN, AVAE (softplus forms)."""
    for loss in (adversary_loss, discriminator_loss):
        v = loss(t_pos, t_neg)
        assert torch.isfinite(v) and v >= 0
        _close(loss(_dup(t_pos), _dup(t_neg)), v)
    w_pos = torch.full_like(t_pos, 1 / t_pos.numel())
    w_neg = torch.full_like(t_neg, 1 / t_neg.numel())
    _close(discriminator_loss(t_pos, t_neg, w_pos, w_neg), discriminator_loss(t_pos, t_neg))


@FAST
@given(saturated)
def test_logistic_losses_have_finite_gradients_at_saturation(t):
    t = t.clone().requires_grad_(True)
    (adversary_loss(t, t) + discriminator_loss(t, -t)).backward()
    assert torch.isfinite(t.grad).all()


# ---------------------------------------------------------------------------------------- f-GAN KL games (BAVAE)
@FAST
@given(saturated, saturated, st.floats(1.5, 20.0))
def test_bounded_kl_game_is_finite_and_batch_size_free(v_p, v_q, t_max):
    """BAVAE's discriminators pass their raw outputs through ``bounded``: E_P T - E_Q e^{T-1} stays finite for raw
    outputs of +-1e4 (unbounded, e^{1e4 - 1} overflows), and the game value is <= t_max."""
    t_p, t_q = bounded(v_p, t_max), bounded(v_q, t_max)
    assert (t_p <= t_max).all() and (t_q <= t_max).all()
    v = kl_fgan_objective(t_p, t_q)
    assert torch.isfinite(v) and v <= t_max
    _close(kl_fgan_objective(_dup(t_p), _dup(t_q)), v)
    raw = v_q.clone().requires_grad_(True)
    kl_fgan_objective(bounded(v_p, t_max), bounded(raw, t_max)).backward()
    assert torch.isfinite(raw.grad).all()


# ---------------------------------------------------------------------------------------- AVAE
@st.composite
def avae_batch(draw):
    b, z = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    log_sigma = torch.tensor(draw(st.lists(st.floats(-8.0, -1e-4), min_size=z, max_size=z)))  # sigma_e in (3e-4, 1)
    c_fake = torch.tensor(draw(st.lists(logit, min_size=b, max_size=b)))
    return c_fake, torch.randn(b, z, generator=g) * 3, torch.randn(b, z, generator=g) * 3, log_sigma


@FAST
@given(avae_batch(), st.sampled_from(["slides", "code"]))
def test_avae_generator_loss_is_finite_per_example_and_batch_size_free(batch, variant):
    c_fake, mu, z, log_sigma = batch
    per = generator_loss(c_fake, mu, z, log_sigma, 1.0, variant)
    assert per.shape == c_fake.shape and torch.isfinite(per).all() and (per >= 0).all()
    _close(generator_loss(_dup(c_fake), _dup(mu), _dup(z), log_sigma, 1.0, variant), _dup(per))
    lz = latent_reconstruction_loss(mu, z, log_sigma, variant)
    assert torch.isfinite(lz).all() and (lz >= 0).all()


@FAST
@given(avae_batch())
def test_avae_vae_loss_and_gaussian_kl_are_finite_and_nonnegative(batch):
    _, mu, _, log_sigma = batch
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((mu.shape[0], 1, 4, 4), 0.5), generator=g)
    x_rec = torch.rand(x.shape, generator=g)
    kl = gaussian_kl(mu, log_sigma.exp())
    assert torch.isfinite(kl).all() and (kl >= -1e-4).all()
    per = vae_loss(x, x_rec, mu, log_sigma, beta=1.0)
    assert torch.isfinite(per).all() and (per >= -1e-4).all()
    _close(vae_loss(_dup(x), _dup(x_rec), _dup(mu), log_sigma).mean(), per.mean())


# ---------------------------------------------------------------------------------------- Bernoulli likelihood
def _decoder_with_logits(out_logits: torch.Tensor) -> BernoulliDecoder:
    """A BernoulliDecoder whose output logits are exactly ``out_logits`` (D,) for every z."""
    dec = BernoulliDecoder(2, (out_logits.numel(),), hidden=(4,))
    with torch.no_grad():
        last = dec.net[-1]
        last.weight.zero_()
        last.bias.copy_(out_logits)
    return dec


@FAST
@given(st.lists(st.tuples(logit, st.sampled_from([0.0, 1.0])), min_size=1, max_size=12), st.integers(1, 4))
def test_bernoulli_log_likelihood_is_finite_nonpositive_and_per_example(pairs, batch):
    out = torch.tensor([p[0] for p in pairs])
    x = torch.tensor([p[1] for p in pairs]).expand(batch, -1).clone()
    dec = _decoder_with_logits(out)
    z = torch.randn(batch, 2)
    lp = dec.log_prob(x, z)
    assert lp.shape == (batch,) and torch.isfinite(lp).all() and (lp <= 0).all()
    # the exact value, pixel by pixel: log sigmoid(l) for x = 1, log sigmoid(-l) for x = 0 (summed, not averaged)
    exact = torch.nn.functional.logsigmoid(torch.where(x.bool(), out, -out)).sum(1)
    _close(lp, exact)
    _close(dec.log_prob(_dup(x), _dup(z)), _dup(lp))


# ---------------------------------------------------------------------------------------- likelihood estimators
def _binary_images(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), 0.5), generator=torch.Generator().manual_seed(seed))


@SLOW
@given(st.integers(0, 10_000), st.sampled_from(["vae", "avb", "avb_ac", "asvae"]), st.integers(1, 8))
def test_iwae_estimate_of_binary_data_is_never_above_zero(seed, method, k):
    """log p(x) <= 0 for binary x. IWAE-k is a stochastic lower bound of it, so an untrained model's estimate above 0
    is a sign error or a missing term (its weights p(x|z) p(z) / r(z) would have to exceed 1 on 16 random pixels)."""
    from lib import registry
    from lib.evaluate import evaluate_elbo, iwae_log_px

    torch.manual_seed(seed)
    m = registry.build(method, x_shape=(16,), z_dim=2, hidden=(8,), noise_dim=4, adversary_hidden=(8,), n_flows=2,
                       n_basis=2).eval()
    x = _binary_images(seed, 6, 16)
    est = iwae_log_px(m, x, k=k, n_fit=16)
    assert est.shape == (6,) and torch.isfinite(est).all() and (est <= 0).all()
    if method in ("vae", "asvae"):  # an exact ELBO (analytic / exact-density KL): also a bound below log p(x) <= 0
        assert evaluate_elbo(m, x)["value"] <= 0


@SLOW
@given(st.integers(0, 10_000), st.sampled_from(["prior", "posterior"]))
def test_ais_estimate_of_binary_data_is_never_above_zero(seed, start):
    """From the prior every AIS increment (beta_t - beta_{t-1}) log p(x|z) is <= 0 for binary x, so the estimate is <= 0
    exactly; from a fitted posterior it is a stochastic lower bound of log p(x) <= 0."""
    from lib import registry
    from lib.ais import evaluate_ais

    torch.manual_seed(seed)
    m = registry.build("vae", x_shape=(16,), z_dim=2, hidden=(8,))
    x = _binary_images(seed, 4, 16)
    out = evaluate_ais(m, x, start=start, n_steps=4, n_chains=2, n_leapfrog=2, progress=False,
                       generator=torch.Generator().manual_seed(seed))
    assert torch.isfinite(out["log_px"]).all() and (out["log_px"] <= 0).all()
    assert out["value"] <= 0 and not math.isnan(out["value"])

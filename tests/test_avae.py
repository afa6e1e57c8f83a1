"""AVAE losses: L_Z (both variants) against hand computations and its optimum, the VAE loss, the generator loss."""
import math

import pytest
import torch
import torch.nn.functional as F

from lib.avae import L_Z_VARIANTS, generator_loss, latent_reconstruction_loss
from lib.losses import vae_loss

f64 = torch.float64


def test_slides_L_Z_matches_a_hand_computation():
    mu = torch.tensor([[0.3, -1.0], [2.0, 0.5]], dtype=f64)
    z = torch.tensor([[1.0, 0.0], [-1.0, 2.0]], dtype=f64)
    s = torch.tensor([0.6, 0.8], dtype=f64)                      # sqrt(1 - s^2) = 0.8, 0.6
    got = latent_reconstruction_loss(mu, z, s.log())
    by_hand = [0.5 * (((0.3 - 0.8 * 1.0) / 0.6) ** 2 + ((-1.0 - 0.6 * 0.0) / 0.8) ** 2),
               0.5 * (((2.0 - 0.8 * -1.0) / 0.6) ** 2 + ((0.5 - 0.6 * 2.0) / 0.8) ** 2)]
    assert got.shape == (2,)
    assert torch.allclose(got, torch.tensor(by_hand, dtype=f64), atol=1e-14, rtol=0)
    # it is -log N(sqrt(1 - s^2) z; mu, s^2) up to the constant sum_j log(s_j sqrt(2 pi))
    nll = -torch.distributions.Normal(mu, s).log_prob(torch.sqrt(1 - s**2) * z).sum(1)
    assert torch.allclose(got, nll - (s.log() + 0.5 * math.log(2 * math.pi)).sum(), atol=1e-13, rtol=0)


def test_code_L_Z_matches_a_hand_computation_and_has_no_shrinkage():
    mu = torch.tensor([[0.3, -1.0, 0.2]], dtype=f64)
    z = torch.tensor([[1.0, 0.0, 0.2]], dtype=f64)
    s = torch.tensor([0.5, 1.0, 2.0], dtype=f64)                 # sigma >= 1 is allowed in this variant
    # precisions 1 / s^2 = 4, 1, 0.25 -> weights 4/5.25, 1/5.25, 0.25/5.25
    by_hand = 0.5 * (4 * 0.7**2 + 1 * 1.0**2 + 0.25 * 0.0) / 5.25
    got = latent_reconstruction_loss(mu, z, s.log(), variant="code")
    assert abs(got.item() - by_hand) < 1e-14
    assert abs(latent_reconstruction_loss(z, z, s.log(), variant="code").item()) < 1e-15   # zero at mu = z
    # weights are invariant to a common rescaling of sigma (softmax of -2 log sigma), unlike the slides' form
    assert torch.allclose(latent_reconstruction_loss(mu, z, s.log() + 0.7, variant="code"), got, atol=1e-14, rtol=0)


@pytest.mark.parametrize("variant", L_Z_VARIANTS)
def test_optimum_over_mu_is_the_shrunk_conditional_mean(variant):
    """For z random given the conditioning (here z ~ N(m, v) with fixed m, v), argmin_mu E L_Z = c E[z] with
    c = sqrt(1 - s^2) (slides) or 1 (code); found by gradient descent on a Monte Carlo average."""
    g = torch.Generator().manual_seed(0)
    s = torch.tensor([0.3, 0.6, 0.9], dtype=f64)
    m, v = torch.tensor([1.0, -2.0, 0.5], dtype=f64), 0.7
    z = m + math.sqrt(v) * torch.randn(20000, 3, generator=g, dtype=f64)
    mu = torch.zeros(3, dtype=f64, requires_grad=True)
    opt = torch.optim.LBFGS([mu], lr=1, max_iter=200, tolerance_grad=1e-14, tolerance_change=0, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = latent_reconstruction_loss(mu.expand_as(z), z, s.log(), variant).mean()
        loss.backward()
        return loss

    opt.step(closure)
    c = torch.sqrt(1 - s**2) if variant == "slides" else torch.ones_like(s)
    # the minimiser of a per-dimension quadratic is exactly c times the sample mean (no Monte Carlo error in this claim)
    assert torch.allclose(mu.detach(), c * z.mean(0), atol=1e-10, rtol=0)
    other = torch.ones_like(s) if variant == "slides" else torch.sqrt(1 - s**2)
    assert (mu.detach() - other * z.mean(0)).abs().max() > 0.1                # the other variant's optimum is not it


def test_slides_L_Z_minimum_value_is_the_conditional_variance_term():
    """E L_Z at the optimum = 1/2 sum_j (1 - s_j^2) Var(z_j) / s_j^2 (closed form, exact sample moments)."""
    g = torch.Generator().manual_seed(1)
    s = torch.tensor([0.5, 0.8], dtype=f64)
    z = torch.randn(5000, 2, generator=g, dtype=f64) * torch.tensor([1.5, 0.4], dtype=f64)
    c = torch.sqrt(1 - s**2)
    value = latent_reconstruction_loss((c * z.mean(0)).expand_as(z), z, s.log()).mean().item()
    closed = (0.5 * (1 - s**2) * z.var(0, unbiased=False) / s**2).sum().item()
    assert abs(value - closed) < 1e-12


def test_L_Z_errors():
    mu = z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigma_e < 1"):
        latent_reconstruction_loss(mu, z, torch.tensor([0.0, -1.0]))          # sigma = 1 in dimension 0
    with pytest.raises(ValueError, match="sigma_e < 1"):
        latent_reconstruction_loss(mu, z, torch.tensor([0.5, -1.0]))          # sigma > 1
    with pytest.raises(ValueError, match="slides.*code"):
        latent_reconstruction_loss(mu, z, torch.tensor([-1.0, -1.0]), variant="paper")
    with pytest.raises(ValueError, match=r"\(B, Z\)"):
        latent_reconstruction_loss(mu, torch.zeros(4, 3), torch.tensor([-1.0, -1.0]))
    with pytest.raises(ValueError, match="log_sigma_e"):
        latent_reconstruction_loss(mu, z, torch.tensor([-1.0, -1.0, -1.0]))
    # the code variant accepts sigma >= 1 (no square root of 1 - sigma^2)
    assert latent_reconstruction_loss(mu, z, torch.tensor([0.5, 0.0]), variant="code").shape == (4,)


def test_slides_L_Z_is_accurate_for_tiny_and_near_one_sigma():
    s = torch.tensor([1e-4, 1 - 1e-9], dtype=f64)
    mu, z = torch.zeros(1, 2, dtype=f64), torch.ones(1, 2, dtype=f64)
    got = latent_reconstruction_loss(mu, z, s.log())
    exact = 0.5 * ((1 - s**2) / s**2).sum()
    assert torch.isfinite(got).all() and abs(got.item() / exact.item() - 1) < 1e-9


def test_vae_loss_matches_closed_forms():
    g = torch.Generator().manual_seed(2)
    x, x_rec = torch.rand(3, 2, 2, generator=g, dtype=f64), torch.rand(3, 2, 2, generator=g, dtype=f64)
    mu, log_s = torch.randn(3, 4, generator=g, dtype=f64), torch.randn(4, generator=g, dtype=f64) * 0.3
    # the closed form of Kingma & Welling 2014, App. B, written out (vae_loss itself uses torch.distributions)
    kl = 0.5 * (mu.pow(2) + (2 * log_s).exp() - 1 - 2 * log_s).sum(1)
    sq = 0.5 * (x - x_rec).pow(2).sum((1, 2))
    for beta in (0.0, 1.0, 2.5):
        assert torch.allclose(vae_loss(x, x_rec, mu, log_s, beta), beta * kl + sq, atol=1e-13, rtol=0)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(x, x_rec, mu, log_s, -1.0)
    with pytest.raises(ValueError, match="same shape"):
        vae_loss(x, x_rec[:, :1], mu, log_s)


def test_generator_loss_is_nonsaturating_gan_plus_weighted_L_Z():
    g = torch.Generator().manual_seed(3)
    c = torch.randn(5, generator=g, dtype=f64) * 3
    mu, z = torch.randn(5, 2, generator=g, dtype=f64), torch.randn(5, 2, generator=g, dtype=f64)
    log_s = torch.tensor([-0.5, -1.0], dtype=f64)
    lz = latent_reconstruction_loss(mu, z, log_s)
    got = generator_loss(c, mu, z, log_s, weight=0.3)
    assert torch.allclose(got, -torch.log(torch.sigmoid(c)) + 0.3 * lz, atol=1e-12, rtol=0)
    assert torch.allclose(generator_loss(c, mu, z, log_s, weight=0.0), F.softplus(-c), atol=0, rtol=0)
    with pytest.raises(ValueError, match="weight"):
        generator_loss(c, mu, z, log_s, weight=-1.0)
    with pytest.raises(ValueError, match="c_fake"):
        generator_loss(c[:, None], mu, z, log_s)

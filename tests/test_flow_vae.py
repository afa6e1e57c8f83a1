"""The flow-VAE baseline (lib.vae.FlowVAE, registered "flow_vae"): AS-VAE's planar-flow encoder trained by the plain
ELBO with a Monte Carlo KL (Rezende & Mohamed 2015), the "normalizing flow, 85.1 nats" row of Pu et al. 2017, Table 1.

Checked against independent computations: its loss is the one-sample ELBO written out by hand from the flow's layers;
with no flow layer its ELBO has the expectation of the Gaussian VAE's analytic-KL ELBO for the same weights; and with
the same seed it starts from AS-VAE's encoder and decoder weights (the comparison of notebook 21 relies on it).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F

from lib import registry
from lib.flows import PlanarFlowEncoder
from lib.vae import VAE, FlowVAE

X_SHAPE = (1, 28, 28)
OPTIONS = dict(hidden=(16,), adversary_hidden=(8,), n_flows=3)


def _build(name: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    return registry.build(name, x_shape=X_SHAPE, z_dim=3, **{**OPTIONS, **options})


def _batch(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.rand(n, *X_SHAPE, generator=g), generator=g)


def test_registered_with_the_planar_flow_encoder_and_one_primal_player():
    m = _build("flow_vae")
    assert isinstance(m, FlowVAE) and isinstance(m.encoder, PlanarFlowEncoder) and m.encoder.n_flows == 3
    assert registry.entry("flow_vae").family == "nets"
    assert m.players == {"primal": ("encoder", "decoder")} and m.critic_players == ()
    assert m.schedule == [("primal", 1)]
    assert m.elbo_implementation == registry.build("asvae", x_shape=X_SHAPE, z_dim=3, **OPTIONS).elbo_implementation


@pytest.mark.parametrize("asvae", ["asvae", "asvae_r", "asvae_g"])
def test_same_seed_gives_asvae_encoder_and_decoder_weights(asvae):
    flow, other = _build("flow_vae", seed=3), _build(asvae, seed=3)
    for part in ("encoder", "decoder"):
        a, b = getattr(flow, part).state_dict(), getattr(other, part).state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a), part
    assert not torch.equal(_build("flow_vae", seed=4).decoder.state_dict()["net.0.weight"],
                           flow.decoder.state_dict()["net.0.weight"])  # the seed decides them


def test_loss_is_the_one_sample_elbo_with_the_flows_exact_log_density():
    """Written out from the encoder's parameters: z_0 = mu + sigma eps, z_k = z_{k-1} + u_k tanh(w_k . z_{k-1} + b_k),
    log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_k log|1 + (1 - tanh^2) w_k . u_k|; Bernoulli log p(x|z_K) from the
    decoder's logits; log p(z_K) standard normal. Same seed, hence the same eps."""
    m, x = _build("flow_vae"), _batch()
    torch.manual_seed(7)
    out = m.loss("primal", x)

    with torch.no_grad():
        mu, sigma, u, w, b = m.encoder.params(x)
        torch.manual_seed(7)
        eps = torch.randn(mu.shape)
        z = mu + sigma * eps
        log_q = (-0.5 * eps ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(1)
        for k in range(m.encoder.n_flows):
            a = (w[:, k] * z).sum(1) + b[:, k]
            log_q = log_q - (1 + (1 - a.tanh() ** 2) * (w[:, k] * u[:, k]).sum(1)).abs().log()
            z = z + u[:, k] * a.tanh()[:, None]
        logits, xf = m.decoder(z).flatten(1), x.flatten(1)
        rec = (xf * F.logsigmoid(logits) + (1 - xf) * F.logsigmoid(-logits)).sum(1)
        log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)
        elbo = rec - (log_q - log_p)
    assert out["loss"].requires_grad
    torch.testing.assert_close(out["loss"].detach(), -elbo.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out["rec"], rec.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out["kl"], (log_q - log_p).mean(), rtol=1e-5, atol=1e-4)
    torch.manual_seed(7)
    terms = m.elbo_terms(x)
    torch.testing.assert_close(terms["elbo"].detach(), elbo, rtol=1e-5, atol=1e-4)


def test_loss_gradient_reaches_the_flow_layers():
    m, x = _build("flow_vae"), _batch()
    m.loss("primal", x)["loss"].backward()
    flow_rows = m.encoder.head.weight.grad[2 * m.z_dim:]  # the rows that output (u, w, b) of each layer
    assert flow_rows.abs().sum() > 0 and m.decoder.net[0].weight.grad.abs().sum() > 0


def test_without_flow_layers_the_elbo_is_the_gaussian_vaes_in_expectation():
    """n_flows = 0: the same networks as the VAE's (same seed, same weights). Over n samples per image, the Monte
    Carlo KL log q(z|x) - log p(z) averages to torch's analytic KL(q || p), and the flow VAE's one-sample ELBO to the
    VAE's analytic-KL ELBO, both within 4 standard errors."""
    flow, vae = _build("flow_vae", n_flows=0), _build("vae")
    assert isinstance(vae, VAE) and not isinstance(vae, FlowVAE)
    a, b = flow.state_dict(), vae.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():  # a posterior well away from the prior, in both models
        flow.encoder.head.weight.mul_(4)
        flow.encoder.head.bias[: flow.z_dim].add_(1.0)  # the means
    vae.load_state_dict(flow.state_dict())

    x, n = _batch(3), 4000
    xs = x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:])
    torch.manual_seed(1)
    with torch.no_grad():
        f, v = flow.elbo_terms(xs), vae.elbo_terms(xs)
        kl_exact = D.kl_divergence(vae.encoder(x), vae.prior())
    kl_mc = f["kl"].view(n, -1)
    assert kl_exact.min() > 1  # not the trivial posterior = prior
    assert ((kl_mc.mean(0) - kl_exact).abs() < 4 * kl_mc.std(0) / n ** 0.5).all(), (kl_mc.mean(0), kl_exact)
    torch.testing.assert_close(v["kl"].view(n, -1)[0], kl_exact)
    fe, ve = f["elbo"].view(n, -1), v["elbo"].view(n, -1)
    sem = ((fe.var(0) + ve.var(0)) / n) ** 0.5
    assert ((fe.mean(0) - ve.mean(0)).abs() < 4 * sem).all(), (fe.mean(0), ve.mean(0), sem)

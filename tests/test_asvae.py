"""AS-VAE: the planar flow's numerical inverse and density, Lemma 1's optimum, the players and pairings."""
import math

import pytest
import torch
import torch.distributions as D

from lib import registry
from lib.asvae import ASVAE
from lib.evaluate import iwae_log_px
from lib.flows import PlanarFlowEncoder
from lib.losses import discriminator_loss
from lib.nets import BernoulliDecoder, make_trunk
from lib.toys import FourPointSampler
from lib.train import fit


def _flow(x_dim=6, z_dim=3, n_flows=10, strength=5.0, dtype=torch.float64):
    enc = PlanarFlowEncoder(make_trunk("mlp", (x_dim,), (16,)), z_dim=z_dim, n_flows=n_flows)
    if strength != 1.0:
        with torch.no_grad():  # strong, far-from-identity layers
            enc.head.weight.mul_(strength)
            enc.head.bias.normal_(0, 2)
    return enc.to(dtype)


def test_flow_inverse_recovers_the_density_of_its_own_samples():
    enc = _flow()
    x = torch.randn(400, 6, dtype=torch.float64)
    z, log_q = enc.sample_and_log_prob(x)
    assert torch.allclose(enc.log_prob(z, x), log_q, atol=1e-8, rtol=0)
    # and in float32 at the scale of initialised / trained parameters
    enc32 = _flow(strength=1.0, dtype=torch.float32)
    z, log_q = enc32.sample_and_log_prob(x.float())
    assert (enc32.log_prob(z, x.float()) - log_q).abs().max() < 1e-3


def test_flow_density_integrates_to_one_and_reduces_to_the_gaussian():
    enc = _flow(x_dim=2, z_dim=1, n_flows=5, strength=4.0)
    grid = torch.linspace(-40, 40, 40001, dtype=torch.float64).unsqueeze(1)
    x = torch.randn(1, 2, dtype=torch.float64).expand(grid.shape[0], 2)
    mass = enc.log_prob(grid, x).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert abs(float(mass.detach()) - 1) < 1e-3
    # with no planar layers it is exactly torch.distributions' diagonal Gaussian
    gauss = PlanarFlowEncoder(make_trunk("mlp", (2,), (8,)), z_dim=2, n_flows=0).double()
    xg, z = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    mu, sigma, *_ = gauss.params(xg)
    assert torch.allclose(gauss.log_prob(z, xg), D.Independent(D.Normal(mu, sigma), 1).log_prob(z))


def test_flow_log_prob_gradients_match_finite_differences():
    """The implicit-function Newton step must give the exact derivative of the numerical inverse,
    both in z and in the encoder's parameters."""
    enc = _flow(n_flows=4, strength=2.0)
    x = torch.randn(3, 6, dtype=torch.float64)
    z = enc.sample(x).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda zz: enc.log_prob(zz, x), (z,))
    bias = enc.head.bias.detach().clone().requires_grad_(True)

    class LogProb(torch.nn.Module):
        def __init__(self, enc):
            super().__init__()
            self.enc = enc

        def forward(self, z, x):
            return self.enc.log_prob(z, x)

    wrapped = LogProb(enc)
    assert torch.autograd.gradcheck(
        lambda b: torch.func.functional_call(wrapped, {"enc.head.bias": b}, (z.detach(), x)), (bias,))


def test_flow_log_prob_rejects_bad_shapes():
    enc = _flow(dtype=torch.float32)
    with pytest.raises(ValueError, match="z must be"):
        enc.log_prob(torch.zeros(4, 2), torch.zeros(4, 6))


def test_lemma1_optimum_is_the_log_density_ratio():
    """Free logits on a discrete space, exact expectations: the minimiser is log P - log Q (not log Q - log P)."""
    g = torch.Generator().manual_seed(0)
    P = torch.rand(12, generator=g, dtype=torch.float64).softmax(0)
    Q = (2 * torch.rand(12, generator=g, dtype=torch.float64)).softmax(0)
    f = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([f], lr=1, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = discriminator_loss(f, f, P, Q)
        loss.backward()
        return loss

    opt.step(closure)
    target = (P / Q).log()
    assert (f.detach() - target).abs().max() < 1e-4
    assert (f.detach() + target).abs().max() > 0.1


def test_bernoulli_rsample_is_binary_with_the_gradient_of_the_mean():
    dec = BernoulliDecoder(2, (5,), hidden=(8,))
    z = torch.randn(7, 2)
    x = dec.rsample(z)
    assert set(x.detach().unique().tolist()) <= {0.0, 1.0}
    w = torch.randn(7, 5)
    (g_sample,) = torch.autograd.grad((x * w).sum(), dec.net[0].weight)
    (g_mean,) = torch.autograd.grad((torch.sigmoid(dec(z)) * w).sum(), dec.net[0].weight)
    assert torch.allclose(g_sample, g_mean)


def _asvae(method="asvae"):
    return registry.build(method, x_shape=(4,), z_dim=2, hidden=(16,), adversary_hidden=(16,), n_flows=3)


def test_pairings_of_the_two_discriminators():
    m = _asvae()
    m.encoder.sample = lambda x: 10 * x[:, :2] + torch.arange(x.shape[0]).unsqueeze(1)  # distinct deterministic codes
    x = torch.bernoulli(torch.full((16, 4), 0.5))
    s = m.discriminator_samples(x)
    (x1p, z1p), (x1n, z1n) = s["psi1"]
    (x2p, z2p), (x2n, z2n) = s["psi2"]
    codes = m.encoder.sample(x)
    assert x1p is x and torch.equal(z1p, codes)                    # psi1 positives: q(x) q(z|x)
    assert x2n is x and torch.equal(z2n, codes.roll(1, dims=0))   # psi2 negatives: data with another point's code
    assert not torch.equal(z2n, codes)
    for generated in (x1n, x2p):                                   # generated x are binary, like the data
        assert set(generated.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("method,used,unused", [("asvae", ("f_psi1", "f_psi2"), ()), ("asvae_r", ("f_psi1",), ("f_psi2",)),
                                                ("asvae_g", ("f_psi2",), ("f_psi1",))])
def test_each_variant_trains_exactly_its_discriminators(method, used, unused):
    m = _asvae(method)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fit(m, FourPointSampler(32), steps=3, lr={"discriminators": 1e-2, "primal": 1e-2}, progress=False)
    changed = {k.split(".")[0] for k, v in m.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"encoder", "decoder", *used}, changed
    for name in unused:
        assert all(p.grad is None for p in getattr(m, name).parameters())


def test_variant_and_step_validation():
    m = _asvae()
    with pytest.raises(ValueError, match="variant"):
        ASVAE(m.encoder, m.decoder, m.f_psi1, m.f_psi2, variant="rg")
    with pytest.raises(ValueError, match="discriminator_steps"):
        ASVAE(m.encoder, m.decoder, m.f_psi1, m.f_psi2, discriminator_steps=0)
    with pytest.raises(KeyError, match="players"):
        m.loss("adversary", torch.zeros(2, 4))


def test_iwae_with_the_flow_as_proposal_converges_to_the_exact_log_px(informative_toy):
    model, x, exact = informative_toy("asvae")
    assert isinstance(model.encoder, PlanarFlowEncoder)
    # fit the flow to the posterior first (ELBO in the encoder only), so that importance sampling converges
    opt = torch.optim.Adam(model.encoder.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        (-model.elbo_terms(x.repeat(64, 1))["elbo"].mean()).backward()
        opt.step()
    torch.manual_seed(0)
    est = iwae_log_px(model, x, k=20_000, chunk=2_000)
    with torch.no_grad():
        elbo = model.elbo_terms(x.repeat(2000, 1))["elbo"].view(2000, 4).mean(0)
    assert (est - exact).abs().max() < 0.05, (est, exact)
    assert (elbo <= exact + 0.01).all()  # the ELBO with the flow's density is a lower bound too
    assert math.isfinite(float(est.sum()))


def test_cifar_pipeline_on_random_8bit_images():
    """22_asvae_cifar10's pipeline (train on dequantised batches, discretised bits/dim, RMSE) on random
    (3, 32, 32) uint8 tensors: CIFAR-10 itself cannot be downloaded here."""
    from lib.data import BatchSampler
    from lib.evaluate import dequantize, evaluate_discretized_elbo
    from lib.reconstruction_metrics import reconstruction_errors

    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    m = registry.build("asvae", x_shape=(3, 32, 32), z_dim=4, arch="conv32", hidden=(32,), adversary_hidden=(16,),
                       n_flows=0, likelihood="gaussian")
    hist = fit(m, BatchSampler(x, 4, dynamic_binarization=False, transform=dequantize), steps=2,
               lr={"primal": 1e-4, "discriminators": 1e-4}, log_every=1, progress=False)
    assert all(math.isfinite(v) for row in hist for v in row.values())
    bpd = evaluate_discretized_elbo(m, x)
    # an untrained Gaussian decoder cannot beat the uniform 8 bits/dim by much on uniform noise, and the
    # discrete likelihood is a probability: -log P >= 0
    assert 7.5 < bpd["value"] < 40, bpd
    with torch.no_grad():
        y = (x.float() + 0.5) / 256
        rec = m.decoder(m.sample_posterior(y))[0]
        assert rec.shape == x.shape and m.decoder.rsample(torch.randn(3, 4)).shape == (3, 3, 32, 32)
    assert reconstruction_errors(y, rec)["rmse_255"]["value"] > 0
    with pytest.raises(ValueError, match="integer grey levels"):
        evaluate_discretized_elbo(m, x.float() / 255)


def test_cifar_loader_says_how_to_get_the_data(tmp_path):
    from lib.data import DataError, load_cifar10
    with pytest.raises(DataError, match="download=True"):
        load_cifar10(tmp_path)


def test_gaussian_likelihood_is_only_for_vae_and_asvae():
    with pytest.raises(ValueError, match="VAE and AS-VAE"):
        registry.build("avb", x_shape=(4,), z_dim=2, likelihood="gaussian")

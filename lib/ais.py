"""Annealed importance sampling (AIS) of log p(x) for decoder-based models, and BDMC sandwiches.

AIS (Neal 2001, "Annealed importance sampling", Stat. Comput. 11) as used for decoder-based
generative models by Wu, Burda, Salakhutdinov & Grosse (ICLR 2017, "On the quantitative analysis of
decoder-based generative models") and by AVB's evaluation (Mescheder et al. 2017: HMC with 10
leapfrog steps, 1000 linear steps, 5 chains, a Gaussian fitted to posterior samples as start).

Path: geometric, f_t(z) = r(z|x)^(1 - beta_t) [p(z) p(x|z)]^beta_t with 0 = beta_0 < ... < beta_T = 1,
from a normalised start r (default the prior N(0, I)) to the unnormalised posterior p(z) p(x|z),
whose normaliser is p(x). With z_0 ~ r and z_t drawn by an HMC kernel that leaves f_t invariant,
log w = sum_{t=1..T} (beta_t - beta_{t-1}) [log p(z_{t-1}) + log p(x|z_{t-1}) - log r(z_{t-1})]
has E w = p(x); log mean_k w_k over K chains is a stochastic *lower* bound on log p(x) (Jensen).

Reverse AIS (BDMC, Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using
bidirectional Monte Carlo", arXiv 1511.02543): on data simulated from the model, the latent that
generated x is an exact posterior sample; running the same path from beta = 1 down to 0 gives weights
with E w_rev = 1/p(x), so -log mean_k w_rev,k is a stochastic *upper* bound. The gap
(reverse - forward) bounds the error of both on simulated data and shrinks as T grows.

All log-likelihoods are in nats per example. Chains are laid out as one (K * B, Z) tensor, chain k of
image b at row k * B + b (the layout of ``x.repeat(K, ...)``), so every step is one batched call.

Also here: the linear-Gaussian model p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I), whose marginal
N(b, W W^T + s^2 I) is exact (docs/papers.md §5, item 6), and samplers of (x, z) from a model.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import torch
import torch.distributions as D
from tqdm.auto import tqdm

from .evaluate import _check_positive, check_eval_data, check_n_fit, mean_sem
from .method import Method
from .nets import standard_normal_prior

SCHEDULES = ("linear", "sigmoid")
#: step-size adaptation: the per-image acceptance average is a moving average with this weight on the
#: past; the step size is multiplied by ADAPT_UP when it is above the target, by ADAPT_DOWN otherwise.
ADAPT_SLOWNESS, ADAPT_UP, ADAPT_DOWN = 0.9, 1.02, 0.98
STEP_SIZE_RANGE = (1e-4, 10.0)  #: the adapted step size is clamped to this range

LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def beta_schedule(n_steps: int, schedule: str = "linear", delta: float = 4.0, device="cpu") -> torch.Tensor:
    """Annealing temperatures beta_0 = 0 < ... < beta_T = 1: (n_steps + 1,) float64.

    ``"linear"``: beta_t = t / T (AVB's evaluation). ``"sigmoid"``: beta_t proportional to
    sigmoid(delta (2 t / T - 1)), rescaled to [0, 1] (Grosse et al. 2015; Wu et al. 2017 use delta = 4):
    more steps near both ends of the path.
    raises ValueError for n_steps < 1 or an unknown schedule name.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {SCHEDULES}")
    t = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64, device=device)
    if schedule == "linear" or n_steps == 1:
        return t
    s = torch.sigmoid(delta * (2 * t - 1))
    return (s - s[0]) / (s[-1] - s[0])


def _sample(dist: D.Distribution, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """n draws from ``dist`` (batch (B,) or (), event (Z,)): (n, *batch, Z). Diagonal and full-covariance
    Gaussians use ``generator``; any other distribution falls back to ``dist.sample`` (global RNG)."""
    base = dist.base_dist if isinstance(dist, D.Independent) else None
    if isinstance(base, D.Normal) and dist.reinterpreted_batch_ndims == 1:
        loc, scale = base.loc, base.scale
        shape = (n, *torch.broadcast_shapes(loc.shape, scale.shape))
        return loc + scale * torch.randn(shape, generator=generator, device=loc.device, dtype=loc.dtype)
    if isinstance(dist, D.MultivariateNormal):
        loc, tril = dist.loc, dist.scale_tril
        eps = torch.randn((n, *dist.batch_shape, loc.shape[-1]), generator=generator, device=loc.device,
                          dtype=loc.dtype)
        return loc + (tril @ eps.unsqueeze(-1)).squeeze(-1)
    return dist.sample((n,))


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _diag_gaussian(dist: D.Distribution):
    """(loc, scale) of a diagonal Gaussian ``Independent(Normal, 1)``, else None."""
    if isinstance(dist, D.Independent) and isinstance(dist.base_dist, D.Normal) and dist.reinterpreted_batch_ndims == 1:
        return dist.base_dist.loc, dist.base_dist.scale
    return None


def _check_dist(name: str, dist: D.Distribution, B: int, z_dim: int) -> None:
    if tuple(dist.event_shape) != (z_dim,) or tuple(dist.batch_shape) not in ((), (B,)):
        raise ValueError(f"{name} must have batch shape (B,) = ({B},) or () and event shape ({z_dim},); "
                         f"got batch {tuple(dist.batch_shape)}, event {tuple(dist.event_shape)}")


@torch.no_grad()
def _anneal(log_likelihood: LogLikelihood, x: torch.Tensor, z0: torch.Tensor, betas: torch.Tensor,
            start: D.Distribution, prior: D.Distribution, *, n_leapfrog: int, step_size: float,
            target_accept: float, progress: bool, generator: torch.Generator | None, desc: str) -> dict:
    """Run K chains per image along ``betas`` (from beta_0 to beta_T, either direction) from z0 (K, B, Z).

    At step i = 1..T: log w += (beta_i - beta_{i-1}) [log p(z) + log p(x|z) - log r(z)] at the current z,
    then (for i < T) one HMC transition leaving f_{beta_i} invariant. returns log w (K, B) float64 and
    the acceptance and step-size statistics.
    """
    K, B, Z = z0.shape
    N = K * B
    xs = x.repeat(K, *([1] * (x.dim() - 1)))  # row k * B + b is x[b]
    dev, dt = x.device, z0.dtype
    acc_dtype = torch.float64 if dev.type != "mps" else torch.float32

    r_gauss, p_gauss = _diag_gaussian(start), _diag_gaussian(prior)

    def log_density(dist, gauss, zk: torch.Tensor):
        """log dist(z) (N,) and its gradient in z (N, Z): analytic for diagonal Gaussians, else autograd."""
        if gauss is not None:
            loc, scale = gauss
            u = (zk - loc) / scale
            lp = (-0.5 * u.pow(2) - scale.log() - _HALF_LOG_2PI).sum(-1).reshape(N)
            return lp, (-u / scale).reshape(N, Z)
        with torch.enable_grad():
            zz = zk.detach().requires_grad_(True)
            lp = dist.log_prob(zz).reshape(N)
            g, = torch.autograd.grad(lp.sum(), zz, allow_unused=True)
        return lp.detach(), (torch.zeros_like(zz) if g is None else g.detach()).reshape(N, Z)

    def evaluate(z: torch.Tensor):
        """log r, log p(z) p(x|z) (N,) and their gradients in z (N, Z), all detached."""
        zk = z.view(K, B, Z)
        log_r, g_r = log_density(start, r_gauss, zk)
        log_p, g_p = log_density(prior, p_gauss, zk)
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            log_lik = log_likelihood(xs, zz).reshape(N)
            g_l, = torch.autograd.grad(log_lik.sum(), zz, allow_unused=True)
        g_l = torch.zeros_like(z) if g_l is None else g_l
        return log_r, log_p + log_lik.detach(), g_r, g_p + g_l.detach()

    z = z0.reshape(N, Z).to(dev).detach().clone()
    log_r, log_joint, g_r, g_j = evaluate(z)
    log_w = torch.zeros(N, dtype=acc_dtype, device=dev)
    eps = torch.full((B,), float(step_size), device=dev, dtype=dt)  # one step size per image
    avg_accept = torch.full((B,), float(target_accept), device=dev, dtype=dt)
    accept_sum, n_transitions = torch.zeros(B, device=dev, dtype=acc_dtype), 0
    T = betas.numel() - 1
    betas_list = betas.tolist()
    for i in tqdm(range(1, T + 1), disable=not progress, desc=desc, leave=False):
        beta_prev, beta = betas_list[i - 1], betas_list[i]
        log_w += (beta - beta_prev) * (log_joint - log_r).to(acc_dtype)
        if i == T:
            break
        # --- one HMC transition leaving f_beta(z) = r(z)^(1 - beta) [p(z) p(x|z)]^beta invariant ---
        e = eps.repeat(K).unsqueeze(1)  # (N, 1)
        p0 = torch.randn(N, Z, generator=generator, device=dev, dtype=dt)
        h0 = -((1 - beta) * log_r + beta * log_joint) + 0.5 * p0.pow(2).sum(1)
        zn, p = z, p0 + 0.5 * e * ((1 - beta) * g_r + beta * g_j)
        for step in range(n_leapfrog):
            zn = zn + e * p
            lr_n, lj_n, gr_n, gj_n = evaluate(zn)
            grad = (1 - beta) * gr_n + beta * gj_n
            p = p + (e if step < n_leapfrog - 1 else 0.5 * e) * grad
        h1 = -((1 - beta) * lr_n + beta * lj_n) + 0.5 * p.pow(2).sum(1)
        # log(1 - U) with U ~ U[0, 1): never -inf (torch.rand can return exactly 0, which would accept anything)
        log_u = torch.log1p(-torch.rand(N, generator=generator, device=dev, dtype=dt))
        accept = log_u < h0 - h1  # NaN / inf energies compare False: rejected
        accept &= torch.isfinite(lr_n) & torch.isfinite(lj_n) & torch.isfinite(zn).all(1)
        a = accept.unsqueeze(1)
        z = torch.where(a, zn, z)
        log_r, log_joint = torch.where(accept, lr_n, log_r), torch.where(accept, lj_n, log_joint)
        g_r, g_j = torch.where(a, gr_n, g_r), torch.where(a, gj_n, g_j)
        # Metropolis acceptance probability min(1, exp(h0 - h1)), averaged over an image's K chains
        prob = torch.exp(torch.clamp(h0 - h1, max=0.0)).nan_to_num(0.0).view(K, B).mean(0)
        accept_sum += prob.to(acc_dtype)
        n_transitions += 1
        avg_accept = ADAPT_SLOWNESS * avg_accept + (1 - ADAPT_SLOWNESS) * prob
        eps = torch.where(avg_accept > target_accept, eps * ADAPT_UP, eps * ADAPT_DOWN).clamp(*STEP_SIZE_RANGE)
    # n_steps = 1 makes no transition (plain importance sampling): no acceptance rate then
    accept_rate = accept_sum / n_transitions if n_transitions else torch.full_like(accept_sum, float("nan"))
    return {"log_w": log_w.view(K, B), "accept_rate": accept_rate, "final_accept": avg_accept, "step_size": eps,
            "z": z.view(K, B, Z)}


def _validate(x, n_steps, n_chains, n_leapfrog, step_size, target_accept, schedule):
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1, got {n_chains}")
    if n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be >= 1, got {n_leapfrog}")
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {SCHEDULES}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a non-empty batch dimension, got shape {tuple(x.shape)}")


def _result(log_px: torch.Tensor, run: dict, direction: str, n_steps, n_chains, n_leapfrog, schedule,
            target_accept, start_text: str) -> dict:
    m, s = mean_sem(log_px.detach().cpu())
    bound = "stochastic lower bound" if direction == "forward" else "stochastic upper bound (reverse AIS, BDMC)"
    return {
        "log_px": log_px, "mean": m, "sem": s,
        "accept_rate": float(run["accept_rate"].mean()), "final_accept_rate": float(run["final_accept"].mean()),
        "step_size": float(run["step_size"].mean()), "step_sizes": run["step_size"],
        "log_w": run["log_w"], "z": run["z"], "n_steps": n_steps, "n_chains": n_chains, "n_leapfrog": n_leapfrog,
        "schedule": schedule, "direction": direction,
        "implementation": (f"{'reverse ' if direction == 'reverse' else ''}AIS ({bound}), geometric path, "
                           f"{n_steps} {schedule} steps, {n_chains} chains, HMC with {n_leapfrog} leapfrog steps, "
                           f"step size adapted per image towards {target_accept:g} acceptance; start: {start_text}"),
    }


def ais_log_px(log_likelihood: LogLikelihood, x: torch.Tensor, z_dim: int, *, start: D.Distribution | None = None,
               prior: D.Distribution | None = None, n_steps: int = 1000, n_chains: int = 5, n_leapfrog: int = 10,
               step_size: float = 0.05, target_accept: float = 0.65, schedule: str = "linear",
               progress: bool | None = None, generator: torch.Generator | None = None) -> dict:
    """AIS estimate of log p(x) = log int p(z) p(x|z) dz for each x, a stochastic lower bound.

    log_likelihood: (x (N, *x_shape), z (N, Z)) -> log p(x|z) (N,) nats, differentiable in z,
        e.g. ``method.decoder.log_prob``; x is repeated K times to match the K * B chains.
    x: (B, *x_shape). z_dim: Z.
    start: the normalised start distribution r(z|x), batch shape (B,) (or ()) and event (Z,), e.g.
        ``lib.evaluate.proposal(method, x)``; None: the prior. prior: p(z); None: N(0, I_Z).
    n_steps: T annealing steps (T weight updates, T - 1 HMC transitions; T = 1 is importance sampling
        from r with K samples). n_chains: K independent chains per image.
    n_leapfrog, step_size: HMC leapfrog steps per transition and the *initial* step size.
    target_accept: adaptation rule: after every transition, a per-image moving average
        a <- 0.9 a + 0.1 mean_k alpha_k of the Metropolis acceptance probabilities alpha_k of its K chains
        is updated, and the image's step size is multiplied by 1.02 if a > target_accept, else by 0.98
        (Wu et al. 2017's rule; clamped to [1e-4, 10]). Adapting on the chains' own past makes AIS
        only approximately unbiased, as in Wu et al. and AVB's code.
    schedule: ``"linear"`` or ``"sigmoid"`` (:func:`beta_schedule`).
    progress: tqdm bar over the steps (default: on unless the ``CI`` variable is set).
    generator: a ``torch.Generator`` on x's device for the start draws, momenta and accept tests
        (start distributions other than Gaussians draw from the global RNG).

    returns: {"log_px": (B,) nats on x's device, "mean", "sem" (standard error over images),
        "accept_rate" (mean Metropolis acceptance probability over all transitions, chains and images),
        "final_accept_rate" (the moving average at the end), "step_size" (mean final step size),
        "step_sizes" (B,), "log_w" (K, B) float64 per-chain log weights, "z" (K, B, Z) the chains' final
        states (approximate posterior samples), "n_steps", "n_chains", "n_leapfrog", "schedule", "direction",
        "implementation"}.
    raises ValueError for n_steps < 1, n_chains < 1, n_leapfrog < 1, step_size <= 0, target_accept
        outside (0, 1), an unknown schedule, or start / prior of the wrong shape.

    Cost: about (T - 1) * n_leapfrog + 1 forward-and-backward passes of the decoder on K * B latents. With
    AVB's settings (T = 1000, K = 5, 10 leapfrog steps) and a 8-512-512-784 MLP decoder this measured
    0.39 images/s on 2 idle CPU threads for B = 20 (about 0.7 h per 1000 images; B = 100: about 0.5 h).
    """
    _validate(x, n_steps, n_chains, n_leapfrog, step_size, target_accept, schedule)
    B = x.shape[0]
    prior = standard_normal_prior(z_dim, x.device) if prior is None else prior
    start_text = "prior N(0, I)" if start is None else f"{type(start).__name__} start distribution"
    start = prior if start is None else start
    _check_dist("start", start, B, z_dim)
    _check_dist("prior", prior, B, z_dim)
    if tuple(start.batch_shape) == (B,):
        z0 = _sample(start, n_chains, generator)
    else:  # a start shared by all images (batch shape ()): independent draws for every chain
        z0 = _sample(start, n_chains * B, generator).view(n_chains, B, z_dim)
    if progress is None:
        progress = not os.environ.get("CI")
    betas = beta_schedule(n_steps, schedule)
    run = _anneal(log_likelihood, x, z0.to(x.dtype), betas, start, prior, n_leapfrog=n_leapfrog, step_size=step_size,
                  target_accept=target_accept, progress=progress, generator=generator, desc="AIS")
    log_px = (torch.logsumexp(run["log_w"], 0) - math.log(n_chains)).to(x.dtype)
    return _result(log_px, run, "forward", n_steps, n_chains, n_leapfrog, schedule, target_accept, start_text)


def reverse_ais_log_px(log_likelihood: LogLikelihood, x: torch.Tensor, z_exact: torch.Tensor, z_dim: int, *,
                       start: D.Distribution | None = None, prior: D.Distribution | None = None, n_steps: int = 1000,
                       n_chains: int = 5, n_leapfrog: int = 10, step_size: float = 0.05, target_accept: float = 0.65,
                       schedule: str = "linear", progress: bool | None = None,
                       generator: torch.Generator | None = None) -> dict:
    """Reverse AIS (BDMC, Grosse et al. 2015): a stochastic *upper* bound on log p(x) for simulated data.

    x: (B, *x_shape) drawn from the model, z_exact: (B, Z) the latents that generated it (an exact
    posterior sample each; see :func:`simulate`), or (K, B, Z) one per chain. All K chains start from
    z_exact at beta = 1 and run the path of :func:`ais_log_px` backwards to r at beta = 0 with the same
    HMC kernels; log w_rev = sum_t (beta_{t-1} - beta_t) [log p(z) + log p(x|z) - log r(z)] has
    E w_rev = 1/p(x), and log_px = -log mean_k w_rev,k. Valid only when z_exact is an exact posterior
    sample for x: on real data (where it is not) the result is no bound at all.
    Other arguments and the returned dict as in :func:`ais_log_px` (log_w holds log w_rev).
    raises ValueError as :func:`ais_log_px` does, and for z_exact of the wrong shape.
    """
    _validate(x, n_steps, n_chains, n_leapfrog, step_size, target_accept, schedule)
    B = x.shape[0]
    if z_exact.shape == (B, z_dim):
        z0 = z_exact.unsqueeze(0).expand(n_chains, B, z_dim)
    elif z_exact.shape == (n_chains, B, z_dim):
        z0 = z_exact
    else:
        raise ValueError(f"z_exact must have shape (B, Z) = ({B}, {z_dim}) or (K, B, Z) = ({n_chains}, {B}, {z_dim}), "
                         f"got {tuple(z_exact.shape)}")
    prior = standard_normal_prior(z_dim, x.device) if prior is None else prior
    start_text = "prior N(0, I)" if start is None else f"{type(start).__name__} start distribution"
    start = prior if start is None else start
    _check_dist("start", start, B, z_dim)
    _check_dist("prior", prior, B, z_dim)
    if progress is None:
        progress = not os.environ.get("CI")
    betas = beta_schedule(n_steps, schedule).flip(0)  # 1 -> 0
    run = _anneal(log_likelihood, x, z0.to(x.dtype), betas, start, prior, n_leapfrog=n_leapfrog, step_size=step_size,
                  target_accept=target_accept, progress=progress, generator=generator, desc="reverse AIS")
    log_px = -(torch.logsumexp(run["log_w"], 0) - math.log(n_chains)).to(x.dtype)
    return _result(log_px, run, "reverse", n_steps, n_chains, n_leapfrog, schedule, target_accept, start_text)


def bdmc(log_likelihood: LogLikelihood, x: torch.Tensor, z_exact: torch.Tensor, z_dim: int, **kw) -> dict:
    """Bidirectional Monte Carlo on simulated (x, z_exact): forward AIS (lower) and reverse AIS (upper).

    kw: as for :func:`ais_log_px` (the same for both directions).
    returns: {"forward": dict, "reverse": dict, "gap": (B,) reverse - forward nats, "gap_mean": float}.
    The true log p(x) lies (stochastically) in [forward, reverse] for each simulated x.
    """
    fwd = ais_log_px(log_likelihood, x, z_dim, **kw)
    rev = reverse_ais_log_px(log_likelihood, x, z_exact, z_dim, **kw)
    gap = rev["log_px"] - fwd["log_px"]
    return {"forward": fwd, "reverse": rev, "gap": gap, "gap_mean": float(gap.mean())}


@torch.no_grad()
def simulate(decoder, n: int, z_dim: int, generator: torch.Generator | None = None, device=None):
    """Draw z ~ N(0, I_Z) and x ~ p(x|z) = Bernoulli(sigmoid(decoder(z))) for a :class:`~lib.nets.BernoulliDecoder`.

    returns: x (n, *x_shape) in {0, 1}, z (n, Z). Each z is an exact posterior sample for its x (BDMC).
    """
    device = device if device is not None else next(decoder.parameters()).device
    z = torch.randn(n, z_dim, generator=generator, device=device)
    probs = torch.sigmoid(decoder(z))
    x = (torch.rand(probs.shape, generator=generator, device=device) < probs).to(probs.dtype)
    return x, z


def linear_gaussian_log_likelihood(W: torch.Tensor, b: torch.Tensor, s: float) -> LogLikelihood:
    """log p(x|z) for the linear-Gaussian decoder p(x|z) = N(x; W z + b, s^2 I).

    W: (X, Z), b: (X,), s > 0 the noise std. returns a callable (x (N, X), z (N, Z)) -> (N,) nats.
    raises ValueError if s <= 0 or the shapes do not agree.
    """
    if not s > 0:
        raise ValueError(f"s must be > 0, got {s}")
    if W.dim() != 2 or b.shape != (W.shape[0],):
        raise ValueError(f"W must be (X, Z) and b (X,), got {tuple(W.shape)} and {tuple(b.shape)}")
    const = -W.shape[0] * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        resid = x.flatten(1) - (z @ W.T + b)
        return const - 0.5 * resid.pow(2).sum(1) / s**2

    return log_likelihood


@torch.no_grad()
def linear_gaussian_log_px(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, s: float) -> torch.Tensor:
    """Exact log p(x) = log N(x; b, W W^T + s^2 I) of the linear-Gaussian model with prior N(0, I_Z).

    x: (B, X). W: (X, Z). b: (X,). returns: (B,) nats in x's dtype (computed in float64).
    """
    Wd, bd = W.double(), b.double()
    cov = Wd @ Wd.T + s**2 * torch.eye(W.shape[0], dtype=torch.float64, device=W.device)
    return D.MultivariateNormal(bd, covariance_matrix=cov).log_prob(x.flatten(1).double()).to(x.dtype)


@torch.no_grad()
def simulate_linear_gaussian(W: torch.Tensor, b: torch.Tensor, s: float, n: int,
                             generator: torch.Generator | None = None):
    """Draw z ~ N(0, I_Z), x = W z + b + s * noise. returns x (n, X), z (n, Z)."""
    z = torch.randn(n, W.shape[1], generator=generator, device=W.device, dtype=W.dtype)
    x = z @ W.T + b + s * torch.randn(n, W.shape[0], generator=generator, device=W.device, dtype=W.dtype)
    return x, z


@torch.no_grad()
def evaluate_ais(method: Method, x: torch.Tensor, batch_size: int = 100, start: str = "posterior",
                 n_fit: int = 128, std_scale: float = 1.0, **kw) -> dict:
    """AIS log p(x) of a trained method over an evaluation set x (N, *x_shape), in batches.

    start: ``"posterior"`` (AVB's protocol: a diagonal Gaussian fitted to posterior samples, or the
    encoder's own Gaussian: the encoder's :meth:`~lib.nets.AmortisedEncoder.gaussian_proposal` with ``n_fit``,
    ``std_scale``, as :func:`lib.evaluate.proposal`) or ``"prior"``.
    kw: passed to :func:`ais_log_px` (n_steps, n_chains, n_leapfrog, ...).
    returns: {"value": mean nats, "sem", "n", "log_px" (N,) on the CPU, "accept_rate", "step_size",
    "implementation", and the AIS settings}.
    raises ValueError for an unknown start, batch_size < 1, n_fit < 2, the errors of :func:`ais_log_px`, and those of
    :func:`lib.evaluate.check_eval_data` for x (e.g. pixels outside [0, 1] under a Bernoulli likelihood).
    """
    if start not in ("posterior", "prior"):
        raise ValueError(f"unknown start {start!r}: use 'posterior' or 'prior'")
    _check_positive(batch_size=batch_size)
    check_n_fit(n_fit)
    check_eval_data(method, x, "evaluate_ais")
    method.eval()
    vals, acc, steps, out = [], [], [], {}
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        r = method.encoder.gaussian_proposal(xb, n_fit=n_fit, std_scale=std_scale) if start == "posterior" else None
        out = ais_log_px(method.decoder.log_prob, xb, method.z_dim, start=r, prior=method.prior(xb.device), **kw)
        vals.append(out["log_px"].cpu())
        acc.append(out["accept_rate"] * xb.shape[0])
        steps.append(out["step_size"] * xb.shape[0])
    log_px = torch.cat(vals)
    m, s = mean_sem(log_px)
    start_text = ("Gaussian fitted to posterior samples (lib.evaluate.proposal)" if start == "posterior"
                  else "prior N(0, I)")
    return {"value": m, "sem": s, "n": int(x.shape[0]), "log_px": log_px,
            "accept_rate": sum(acc) / x.shape[0], "step_size": sum(steps) / x.shape[0],
            "n_steps": out["n_steps"], "n_chains": out["n_chains"], "n_leapfrog": out["n_leapfrog"],
            "schedule": out["schedule"],
            "implementation": out["implementation"].rsplit("; start:", 1)[0] + f"; start: {start_text}"}

"""Evaluation: ELBO, importance-sampled log p(x) (IWAE bound), and exact log p(x) for 2-D latents.

All log-likelihoods are in nats per example. Each encoder supplies its own importance distribution
(:meth:`lib.nets.AmortisedEncoder.importance_proposal`): for implicit encoders a diagonal Gaussian fitted to
posterior samples (as AVB's code does for AIS); for adaptive contrast the encoder's exact moment-matched Gaussian;
for the VAE, the encoder itself; for AS-VAE's planar flow, the flow itself (its density is exact).
IWAE-k (Burda et al. 2016) is a lower bound on log p(x) for every k and tends to it as k grows.
"""
from __future__ import annotations

import math

import torch
import torch.distributions as D

from .method import Method
from .nets import BernoulliDecoder, check_batch


def check_eval_data(method: Method, x, where: str) -> None:
    """The entry check of the evaluation functions: x must be a float tensor (B, *x_shape) of the method's dtype, and,
    for a Bernoulli likelihood, hold pixels in [0, 1] (its log-likelihood is not a log-probability elsewhere).
    raises TypeError / ValueError naming the problem and the fix. One device sync (min / max) per call."""
    x_shape = getattr(method.decoder, "x_shape", None)
    if x_shape is not None:
        check_batch(x, x_shape, where, dtype=next(method.parameters()).dtype)
    if isinstance(method.decoder, BernoulliDecoder) and x.numel():
        lo, hi = torch.aminmax(x.detach())
        if not (lo >= 0 and hi <= 1):  # NaN fails both
            raise ValueError(f"{where}: a Bernoulli likelihood needs pixels in [0, 1] (binarised data), got range "
                             f"[{float(lo):.4g}, {float(hi):.4g}]; 8-bit images: x.float() / 255, then "
                             "lib.data.fixed_binarization")


def _check_positive(**kw) -> None:
    for name, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def check_n_fit(n_fit) -> None:
    """raises ValueError unless n_fit is an int >= 2: a fitted proposal's standard deviation is estimated from n_fit
    posterior samples per image, and the standard deviation of one sample is undefined (NaN)."""
    if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit < 2:
        raise ValueError(f"n_fit must be an int >= 2 (the fitted proposal's standard deviation needs at least two "
                         f"posterior samples per image), got {n_fit!r}")


@torch.no_grad()
def proposal(method: Method, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> D.Independent:
    """Diagonal-Gaussian importance distribution for p(z|x), the encoder's
    (:meth:`lib.nets.AmortisedEncoder.gaussian_proposal`): batch shape (B,), event (Z,).

    x: (B, *x_shape), the method's data (e.g. (B, 1, 28, 28) binary images).
    n_fit: posterior samples per x used to fit mean and std when the encoder is implicit (or a flow); >= 2.
    std_scale: widen the std (heavier tails make importance weights safer); > 0.
    raises ValueError if n_fit < 2 or std_scale <= 0, and the errors of :func:`check_eval_data` for x.
    """
    check_n_fit(n_fit)
    if not std_scale > 0:
        raise ValueError(f"std_scale must be > 0, got {std_scale!r}")
    check_eval_data(method, x, "proposal")
    return method.encoder.gaussian_proposal(x, n_fit=n_fit, std_scale=std_scale)


@torch.no_grad()
def iwae_log_px(method: Method, x: torch.Tensor, k: int = 1000, chunk: int = 100, n_fit: int = 128,
                std_scale: float = 1.0) -> torch.Tensor:
    """Importance-sampled log p(x) = log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x), z_i ~ r(.|x).

    r: the encoder's importance proposal (:meth:`lib.nets.AmortisedEncoder.importance_proposal`): the planar flow
    itself (explicit density), else a diagonal Gaussian (:func:`proposal`).

    x: (B, *x_shape): binary pixels in {0, 1} for a Bernoulli decoder; any real values for a Gaussian decoder
    (a density on R^D, so the value is a log-density, not a probability). k: importance samples per x (drawn
    ``chunk`` at a time). n_fit: posterior samples per x for a fitted proposal (>= 2).
    returns: (B,) nats, a stochastic lower bound on log p(x) (IWAE-k).
    raises ValueError if k < 1, chunk < 1 or n_fit < 2, and the errors of :func:`check_eval_data` for x.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_positive(chunk=chunk)
    check_n_fit(n_fit)
    check_eval_data(method, x, "iwae_log_px")
    r = method.encoder.importance_proposal(x, n_fit=n_fit, std_scale=std_scale)
    prior = method.prior(x.device)
    B = x.shape[0]
    logw = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * B, *x.shape[1:])
        z = r.sample((c,))  # (c, B, Z)
        log_r = r.log_prob(z)
        log_lik = method.decoder.log_prob(xs, z.reshape(c * B, -1)).view(c, B)
        logw.append(log_lik + prior.log_prob(z) - log_r)
    return torch.logsumexp(torch.cat(logw, 0), 0) - math.log(k)


def mean_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-D tensor."""
    v = values.double()
    return float(v.mean()), float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")


@torch.no_grad()
def evaluate_log_px(method: Method, x: torch.Tensor, k: int = 1000, batch_size: int = 100, **kw) -> dict:
    """IWAE-k log p(x) over a whole evaluation set x (N, *x_shape), in batches.

    returns: {"value": mean nats, "sem": standard error over images, "n": N, "k": k,
    "log_px": (N,) per-image values on the CPU, "implementation": description}.
    raises ValueError for batch_size < 1 or k < 1, and the errors of :func:`check_eval_data` for x.
    """
    _check_positive(batch_size=batch_size, k=k)
    check_eval_data(method, x, "evaluate_log_px")
    method.eval()
    vals = torch.cat([iwae_log_px(method, x[i:i + batch_size], k=k, **kw).cpu() for i in range(0, x.shape[0], batch_size)])
    m, s = mean_sem(vals)
    return {"value": m, "sem": s, "n": int(x.shape[0]), "k": k, "log_px": vals,
            "implementation": f"importance sampling (IWAE-{k}), {method.encoder.proposal_description}"}


@torch.no_grad()
def evaluate_elbo(method: Method, x: torch.Tensor, batch_size: int = 500, repeats: int = 1) -> dict:
    """Mean ELBO over x (N, *x_shape) with ``method.elbo_terms`` (AVB: the adversary's KL estimate).

    returns: {"value", "sem", "n", "rec", "kl", "implementation"} in nats; the implementation text is the method's
    ``elbo_implementation`` (how its KL term is computed).
    raises ValueError for batch_size < 1 or repeats < 1, and the errors of :func:`check_eval_data` for x.
    """
    _check_positive(batch_size=batch_size, repeats=repeats)
    check_eval_data(method, x, "evaluate_elbo")
    method.eval()
    parts = {"elbo": [], "rec": [], "kl": []}
    for _ in range(repeats):
        for i in range(0, x.shape[0], batch_size):
            t = method.elbo_terms(x[i:i + batch_size])
            for key in parts:
                parts[key].append(t[key].cpu())
    vals = {k: torch.cat(v) for k, v in parts.items()}
    m, s = mean_sem(vals["elbo"])
    impl = method.elbo_implementation or "ELBO (the method does not say how it computes the KL term)"
    return {"value": m, "sem": s, "n": int(x.shape[0]), "rec": float(vals["rec"].mean()), "kl": float(vals["kl"].mean()),
            "implementation": impl}


@torch.no_grad()
def exact_log_px_2d(decoder, x: torch.Tensor, lim: float = 6.0, n: int = 301) -> torch.Tensor:
    """log p(x) = log integral p(x|z) N(z; 0, I) dz for a 2-D latent, by a Riemann sum on an n x n grid of
    equally spaced nodes over [-lim, lim]^2. An estimator-free reference for the toy experiments.

    Accuracy: the prior mass outside the square is 1 - (1 - 2 Phi(-lim))^2, about 4e-9 for lim = 6; inside, the
    midpoint-style sum of a smooth integrand converges faster than any power of the spacing once the grid resolves
    the posterior: a posterior narrower than a few spacings (2 lim / (n - 1) = 0.04 at the defaults) is not
    resolved, so raise n for sharp decoders (a linear-Gaussian decoder is exact to 1e-9 at the defaults,
    tests/test_evaluate.py).
    decoder: anything with ``log_prob(x, z) -> (N,)`` nats, x: (N, *x_shape), z: (N, 2).
    x: (B, *x_shape). The grid is built in x's dtype (the default float dtype for integer x) and on x's device, so
    a float64 decoder is evaluated in float64.
    returns: (B,) nats. raises ValueError if n < 2 or lim <= 0.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 grid nodes per axis, got {n!r}")
    if not lim > 0:
        raise ValueError(f"lim must be > 0 (the grid covers [-lim, lim]^2), got {lim!r}")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    g = torch.linspace(-lim, lim, n, device=x.device, dtype=dtype)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    log_dz = 2 * math.log(float(g[1] - g[0]))
    log_prior = D.Normal(torch.zeros((), dtype=dtype, device=x.device), 1.0).log_prob(zz).sum(1)
    out = []
    for xi in x:
        log_lik = decoder.log_prob(xi.unsqueeze(0).expand(zz.shape[0], *xi.shape), zz)
        out.append(torch.logsumexp(log_lik + log_prior, 0) + log_dz)
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------------------
# Bits per dimension and the discretised likelihood of 8-bit images (AS-VAE's protocol, docs/papers.md §2):
# train on dequantised y = (x + u) / 256, u ~ U[0, 1)^D; test with p(x) = P(y in [x/256, (x+1)/256)).

N_BINS = 256  #: grey levels of an 8-bit image


def bits_per_dim(log_px, n_dims: int):
    """Negative log-likelihood per dimension in bits: -log p(x) / (D ln 2).

    log_px: nats per example (float or tensor (B,)) of the *discrete* data: 8-bit values (use
        :func:`discretized_log_prob` or :func:`dequantized_log_px_bound`), or binary pixels.
    n_dims: D, e.g. 784 for MNIST, 3072 for CIFAR-10. returns: the same type, bits/dim.
    raises ValueError if n_dims < 1.
    Uniform over the 256 levels of every pixel is exactly 8 bits/dim; a fair coin per binary pixel, 1.
    """
    if n_dims < 1:
        raise ValueError(f"n_dims must be >= 1, got {n_dims}")
    return -log_px / (n_dims * math.log(2))


def _check_uint8_levels(x: torch.Tensor, n_bins: int) -> None:
    if x.is_floating_point() and not torch.equal(x, x.round()):
        raise ValueError("x must hold integer grey levels 0..255 (e.g. a uint8 image); got non-integer values. "
                         "Images in [0, 1] come from x / 255 or x / 256: undo that scaling first.")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > n_bins - 1):
        raise ValueError(f"x must hold grey levels in [0, {n_bins - 1}], got range [{int(x.min())}, {int(x.max())}]")


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None, n_bins: int = N_BINS) -> torch.Tensor:
    """Uniform dequantisation for training: y = (x + u) / n_bins with u ~ U[0, 1) per dimension.

    x: any shape, integer grey levels in [0, n_bins - 1] (uint8 or integer-valued float).
    returns: float32 y in [0, 1), same shape. raises ValueError for values that are not such levels.
    """
    _check_uint8_levels(x, n_bins)
    u = torch.rand(x.shape, generator=generator, device=x.device)
    return (x.float() + u) / n_bins


def dequantized_log_px_bound(log_density: torch.Tensor, n_dims: int, n_bins: int = N_BINS) -> torch.Tensor:
    """Lower bound on the discrete log p(x) from a density p on [0, 1]^D of dequantised data y.

    P(x) = integral over the bin of x of p(y) dy >= exp(E_u log p((x + u) / n_bins) - D log n_bins) (Jensen), so
    ``log_density - D log n_bins`` evaluated at one dequantised y is an unbiased estimate of a lower bound
    (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative models", Sec. 3.1).
    log_density: (B,) nats, log p(y) with y in [0, 1]^D. returns: (B,) nats.
    """
    return log_density - n_dims * math.log(n_bins)


def _log_normal_bin_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(b) - Phi(a)) for a < b elementwise (a may be -inf, b +inf), accurate in every tail.

    Bins above the mean are reflected (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)) so that both ends lie where Phi is
    small and ``log_ndtr`` keeps full relative precision; the difference is taken in log space,
    log Phi(hi) + log(1 - exp(log Phi(lo) - log Phi(hi))). Bins that straddle the mean have mass
    1 - Phi(a) - Phi(-b), computed from the two small tails.
    """
    upper = a >= 0  # whole bin above the mean: reflect
    lo, hi = torch.where(upper, -b, a), torch.where(upper, -a, b)
    straddle = (lo < 0) & (hi > 0)
    log_lo, log_hi = torch.special.log_ndtr(lo), torch.special.log_ndtr(hi)
    one_side = log_hi + torch.log1p(-torch.exp(log_lo - log_hi).clamp_max(1.0))
    both = torch.log1p(-(torch.exp(log_lo) + torch.special.ndtr(-hi)))
    return torch.where(straddle, both, one_side)


def discretized_log_prob(dist: D.Normal, x: torch.Tensor, n_bins: int = N_BINS,
                         event_dims: int | None = None) -> torch.Tensor:
    """Exact discrete log-likelihood of 8-bit images under one Normal per pixel on the [0, 1] scale.

    P(x_d = i) = Phi((i + 1) / n_bins; mu, s) - Phi(i / n_bins; mu, s), with the first bin extended to -inf and the
    last to +inf so the n_bins probabilities sum to one (PixelCNN++'s convention; AS-VAE: p(x in [i/256, (i+1)/256))).
    Computed in float64 and in log space (``torch.special.log_ndtr`` with the bin reflected into the lower tail),
    so every bin is right to float64 precision: far-tail bins (masses down to ~1e-300 and below, where the
    log-mass is still finite) and scales far below one bin width included. Checked against 60-digit mpmath over
    every level (tests/test_bits_per_dim.py).
    dist: ``D.Normal(mean, std)`` whose batch shape is x's shape (e.g. :meth:`lib.nets.GaussianDecoder.distribution`).
    x: (B, ...) integer grey levels 0..n_bins-1 (uint8 or integer-valued float). event_dims: trailing dims summed over
    (default all but B).
    returns: (B,) nats, in the distribution's dtype (float64 inside).
    raises TypeError if dist is not a Normal; ValueError if x is not integer levels in range or does not match the
    distribution's batch shape.
    """
    if not isinstance(dist, D.Normal):
        raise TypeError(f"discretized_log_prob needs a torch.distributions.Normal per pixel, got {type(dist).__name__}; "
                        "other per-pixel families need their own bin masses")
    _check_uint8_levels(x, n_bins)
    if tuple(dist.batch_shape) != tuple(x.shape):
        raise ValueError(f"dist.batch_shape {tuple(dist.batch_shape)} must equal x.shape {tuple(x.shape)}: "
                         "one univariate distribution per pixel")
    xf = x.to(torch.float64)
    mu, s = dist.loc.to(torch.float64), dist.scale.to(torch.float64)
    inf = torch.tensor(math.inf, dtype=torch.float64, device=xf.device)
    a = torch.where(xf > 0, (xf / n_bins - mu) / s, -inf)
    b = torch.where(xf < n_bins - 1, ((xf + 1) / n_bins - mu) / s, inf)
    log_mass = _log_normal_bin_mass(a, b).to(dist.loc.dtype)
    dims = tuple(range(1, x.dim())) if event_dims is None else tuple(range(x.dim() - event_dims, x.dim()))
    return log_mass.sum(dims) if dims else log_mass


@torch.no_grad()
def evaluate_discretized_elbo(method: Method, x: torch.Tensor, batch_size: int = 100, n_bins: int = N_BINS) -> dict:
    """ELBO of 8-bit images under the *discretised* decoder likelihood (AS-VAE's test protocol), in bits/dim.

    log P(x) >= E_{q(z|y)}[log P(x|z) + log p(z) - log q(z|y)] with y = (x + 0.5) / n_bins the bin centres and
    P(x|z) = prod_d P(x_d in bin | z) from :func:`discretized_log_prob`; one z per image.
    method: a decoder with ``distribution(z)`` (:class:`lib.nets.GaussianDecoder`), an encoder with
    ``sample_and_log_prob``. x: (N, C, H, W) integer grey levels.
    returns: {"value": mean negative ELBO in bits/dim, "sem", "nats", "n", "implementation"}.
    raises ValueError for x that is not integer levels (see :func:`discretized_log_prob`).
    """
    _check_uint8_levels(x, n_bins)
    method.eval()
    vals = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        y = (xb.float() + 0.5) / n_bins
        z, log_q = method.encoder.sample_and_log_prob(y)
        log_lik = discretized_log_prob(method.decoder.distribution(z), xb, n_bins=n_bins)
        vals.append((log_lik + method.prior(y.device).log_prob(z) - log_q).cpu())
    elbo = torch.cat(vals)
    d = math.prod(x.shape[1:])
    m, s = mean_sem(bits_per_dim(elbo, d))
    return {"value": m, "sem": s, "nats": float(-elbo.mean()), "n": int(x.shape[0]),
            "implementation": "negative ELBO in bits/dim, discretised Gaussian likelihood (bins of 1/256), one z per image"}

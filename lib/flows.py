"""A conditional planar normalizing flow for q_phi(z|x) (Rezende & Mohamed, ICML 2015), with a density
that can be evaluated at *any* z -- which AS-VAE needs (log q_phi(z|x) at prior samples z, Eq. 11 of
Pu et al. 2017), and which a planar flow does not give in closed form.

Sampling: z_0 = mu(x) + sigma(x) * eps, then K layers z_k = z_{k-1} + u_k tanh(w_k . z_{k-1} + b_k), with
(u_k, w_k, b_k) output by the encoder for each x (amortised, as in Rezende & Mohamed). Density:
log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_k log|1 + (1 - tanh^2(w_k . z_{k-1} + b_k)) w_k . u_k|.

Inversion: with u_k constrained so that c = w_k . u_k > -1 (Rezende & Mohamed's u-hat; we keep
c >= -1 + ``C_MIN_MARGIN``), the scalar a = w_k . z_{k-1} solves g(a) = a + c tanh(a + b_k) - w_k . z_k = 0, which is
strictly increasing (g' = 1 + c sech^2 > 0), so it has one root, bracketed by w_k . z_k -+ |c|. We find it by bisection and two Newton steps
without gradients, then take one more Newton step *with* gradients: at the root this leaves the value unchanged
and gives the exact derivative of the root with respect to (u, w, b, z) (implicit function theorem),
so log q_phi(z|x) is differentiable in phi and in z.
"""
from __future__ import annotations

import math

import torch
import torch.distributions as D
import torch.nn as nn
import torch.nn.functional as F

from .nets import AmortisedEncoder

C_MIN_MARGIN = 1e-2


class PlanarFlowEncoder(AmortisedEncoder):
    """q_phi(z|x): diagonal Gaussian base followed by ``n_flows`` x-dependent planar layers.

    trunk: module x (B, *x_shape) -> features (B, F) with ``out_dim`` (see :func:`lib.nets.make_trunk`).
    z_dim: Z. n_flows: K (AS-VAE on MNIST: 80; 0 gives the Gaussian encoder). bisect_iters: halvings of
    the bracket when inverting a layer (40: below float32 resolution for brackets up to ~1e5 wide).
    Importance proposals: IWAE's is the flow itself, whose density is exact (:class:`PlanarFlowPosterior`); the
    Gaussian one (AIS's start) is fitted to posterior samples (:meth:`lib.nets.AmortisedEncoder.fitted_gaussian`).
    """

    proposal_description = "the encoder's planar flow as proposal"

    def __init__(self, trunk: nn.Module, z_dim: int, n_flows: int = 8, bisect_iters: int = 40):
        super().__init__()
        if n_flows < 0:
            raise ValueError(f"n_flows must be >= 0, got {n_flows}")
        self.trunk, self.z_dim, self.n_flows, self.bisect_iters = trunk, z_dim, n_flows, bisect_iters
        self.head = nn.Linear(trunk.out_dim, 2 * z_dim + n_flows * (2 * z_dim + 1))

    # -- parameters -------------------------------------------------------------------------------------
    def params(self, x: torch.Tensor):
        """x: (B, *x_shape). returns mu, sigma (B, Z) and u_hat, w (B, K, Z), b (B, K), with
        w . u_hat >= -1 + C_MIN_MARGIN."""
        B, Z, K = x.shape[0], self.z_dim, self.n_flows
        h = self.head(self.trunk(x))
        mu, raw = h[:, :Z], h[:, Z:2 * Z]
        sigma = F.softplus(raw) + 1e-4
        flow = h[:, 2 * Z:].view(B, K, 2 * Z + 1)
        u, w, b = flow[..., :Z], flow[..., Z:2 * Z], flow[..., 2 * Z]
        wu = (w * u).sum(-1, keepdim=True)
        # u_hat: w . u_hat = -1 + C_MIN_MARGIN + softplus(w . u) > -1, so every layer is invertible with a
        # Jacobian determinant of at least C_MIN_MARGIN (Rezende & Mohamed use margin 0).
        u_hat = u + (F.softplus(wu) - 1 + C_MIN_MARGIN - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-8)
        return mu, sigma, u_hat, w, b

    @staticmethod
    def _base_log_prob(z0, mu, sigma):
        """log N(z0; mu, diag sigma^2): (B,) nats."""
        return D.Normal(mu, sigma, validate_args=False).log_prob(z0).sum(-1)

    @staticmethod
    def _log_det(a, c):
        """log |1 + sech^2(a) c| for pre-activation a (B,) and c = w . u_hat (B,)."""
        return torch.log1p((c * (1 - torch.tanh(a).pow(2))).clamp_min(-1 + 1e-6))  # guard against round-off only

    # -- sampling ---------------------------------------------------------------------------------------
    def sample_and_log_prob(self, x: torch.Tensor):
        """Reparameterised z ~ q_phi(z|x): (B, Z), and log q_phi(z|x): (B,) nats."""
        mu, sigma, u_hat, w, b = self.params(x)
        z = mu + sigma * torch.randn_like(mu)
        log_q = self._base_log_prob(z, mu, sigma)
        for k in range(self.n_flows):
            a = (w[:, k] * z).sum(-1) + b[:, k]
            c = (w[:, k] * u_hat[:, k]).sum(-1)
            log_q = log_q - self._log_det(a, c)
            z = z + u_hat[:, k] * torch.tanh(a).unsqueeze(-1)
        return z, log_q

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """Reparameterised z ~ q_phi(z|x): (B, Z)."""
        return self.sample_and_log_prob(x)[0]

    # -- density at a given z -----------------------------------------------------------------------------
    def _solve(self, t: torch.Tensor, c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Root a of a + c tanh(a + b) = t (all (B,)), c > -1: bisection on the bracket t -+ |c|
        (``bisect_iters`` halvings), then two Newton steps to polish; no gradients."""
        with torch.no_grad():
            lo, hi = t - c.abs(), t + c.abs()
            for _ in range(self.bisect_iters):
                mid = 0.5 * (lo + hi)
                up = mid + c * torch.tanh(mid + b) > t
                hi, lo = torch.where(up, mid, hi), torch.where(up, lo, mid)
            a = 0.5 * (lo + hi)
            for _ in range(2):
                th = torch.tanh(a + b)
                a = a - (a + c * th - t) / (1 + c * (1 - th * th))
        return a

    def log_prob(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log q_phi(z|x) at given z (B, Z) for x (B, *x_shape): (B,) nats, differentiable in phi and z.

        raises ValueError if z and x disagree in batch size or z has the wrong width.
        """
        if z.dim() != 2 or z.shape[0] != x.shape[0] or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}) with B = x.shape[0] = {x.shape[0]}, got {tuple(z.shape)}")
        mu, sigma, u_hat, w, b = self.params(x)
        log_det = torch.zeros_like(z[:, 0])
        for k in reversed(range(self.n_flows)):
            wk, uk, bk = w[:, k], u_hat[:, k], b[:, k]
            c, t = (wk * uk).sum(-1), (wk * z).sum(-1)
            a0 = self._solve(t, c, bk)
            th0 = torch.tanh(a0 + bk)
            a = a0 - (a0 + c * th0 - t) / (1 + c * (1 - th0 * th0))  # exact gradient of the root (see module doc)
            z = z - uk * torch.tanh(a + bk).unsqueeze(-1)              # z_{k-1}
            log_det = log_det + self._log_det(a + bk, c)
        return self._base_log_prob(z, mu, sigma) - log_det

    @torch.no_grad()
    def importance_proposal(self, x: torch.Tensor, n_fit: int = 128, std_scale: float = 1.0) -> "PlanarFlowPosterior":
        """q_phi(z|x) itself, for x (B, *x_shape) (n_fit and std_scale unused: its density is exact)."""
        return PlanarFlowPosterior(self, x)


class PlanarFlowPosterior(D.Distribution):
    """q_phi(z|x) of a :class:`PlanarFlowEncoder` at fixed x (B, *x_shape) as a ``torch.distributions`` object:
    batch shape (B,), event shape (Z,).

    ``rsample(sample_shape)`` runs the flow forward on x repeated prod(sample_shape) times (one batch, x varying
    fastest), which also gives log q_phi(z|x) exactly; ``log_prob`` returns that value for the tensor the last
    ``rsample`` / ``sample`` returned (like ``torch.distributions.transforms``' cache) and inverts the flow
    (:meth:`PlanarFlowEncoder.log_prob`) for any other z.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, encoder: PlanarFlowEncoder, x: torch.Tensor):
        self.encoder, self.x, self._last = encoder, x, None
        super().__init__(batch_shape=x.shape[:1], event_shape=(encoder.z_dim,), validate_args=False)

    def _repeat_x(self, n: int) -> torch.Tensor:
        return self.x.unsqueeze(0).expand(n, *self.x.shape).reshape(n * self.x.shape[0], *self.x.shape[1:])

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """z ~ q_phi(z|x): (*sample_shape, B, Z), reparameterised."""
        sample_shape, B = torch.Size(sample_shape), self.x.shape[0]
        z, log_q = self.encoder.sample_and_log_prob(self._repeat_x(math.prod(sample_shape)))
        z, log_q = z.view(*sample_shape, B, -1), log_q.view(*sample_shape, B)
        self._last = (z, log_q)
        return z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q_phi(z|x) for z (*sample_shape, B, Z): (*sample_shape, B) nats."""
        if self._last is not None and z is self._last[0]:
            return self._last[1]
        shape = z.shape[:-1]
        n = math.prod(shape[:-1])
        return self.encoder.log_prob(z.reshape(-1, z.shape[-1]), self._repeat_x(n)).view(shape)

"""Toy distributions with closed forms, for checking the papers' optimal-discriminator claims.

* :func:`four_points` -- AVB's 4-point data set (Mescheder et al. 2017, Sec. 5.1): four 2x2 binary
  images with exactly one pixel on, equally likely; the optimum is log p(x) = -log 4.
* :func:`gaussian_mixture_1d` -- a 1-D mixture as a ``torch.distributions`` object.
* :func:`random_discrete_joint` -- a random table q(x) q(z|x) on small finite sets.
"""
from __future__ import annotations

import math

import torch
import torch.distributions as D

FOUR_POINTS_LOG_PX = -math.log(4.0)  #: optimum of E log p(x) on the 4-point data (nats)


def four_points() -> torch.Tensor:
    """The four data points of AVB's toy: returns (4, 4) one-hot rows (flattened 2x2 images)."""
    return torch.eye(4)


def sample_four_points(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws from the uniform distribution on the 4 points: returns x (n, 4) in {0,1}, index (n,)."""
    idx = torch.randint(0, 4, (n,), generator=generator)
    return four_points()[idx], idx


class FourPointSampler:
    """Batch source for :func:`lib.train.fit` on the 4-point toy (same ``next`` API as BatchSampler)."""

    def __init__(self, batch_size: int, device="cpu"):
        self.batch_size, self.device = batch_size, torch.device(device)

    def next(self) -> torch.Tensor:
        return sample_four_points(self.batch_size)[0].to(self.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def gaussian_mixture_1d(means, stds, weights=None) -> D.MixtureSameFamily:
    """1-D Gaussian mixture. means, stds, weights: sequences of equal length K (weights sum to 1)."""
    means, stds = torch.as_tensor(means, dtype=torch.float32), torch.as_tensor(stds, dtype=torch.float32)
    if weights is None:
        weights = torch.full_like(means, 1.0 / means.numel())
    return D.MixtureSameFamily(D.Categorical(probs=torch.as_tensor(weights, dtype=torch.float32)), D.Normal(means, stds))


def random_discrete_joint(nx: int, nz: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random joint on {0..nx-1} x {0..nz-1}, every row drawn from a flat Dirichlet.

    returns: (q_x (nx,), q_z_given_x (nx, nz)) in float64, each row summing to 1.
    """
    g = torch.Generator().manual_seed(seed)
    flat_dirichlet = lambda *shape: (e := -torch.rand(*shape, generator=g, dtype=torch.float64).log()) / e.sum(-1, keepdim=True)  # noqa: E731
    return flat_dirichlet(nx), flat_dirichlet(nx, nz)

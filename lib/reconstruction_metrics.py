"""Reconstruction metrics: per-image MSE and RMSE (also on the 0-255 scale), and LPIPS (Zhang et al. 2018).

Results are ``{"value", "sem", "n", "implementation", ...}`` dicts for ``lib.runs.finish_run``: a mean over images
and its standard error. LPIPS raises :class:`lib.inception_metrics.MetricUnavailable` when its ImageNet backbone
weights are missing; the message says how to provide them.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .evaluate import mean_sem
from .inception_metrics import MetricUnavailable, check_images

def reconstruction_errors(x: torch.Tensor, x_rec: torch.Tensor) -> dict:
    """Per-image MSE and RMSE between x and x_rec (N, ...) in [0, 1], then mean and s.e.m. over the N images.

    returns: {"mse", "rmse", "rmse_255"} -> {"value", "sem", "n", "implementation"}; rmse_255: RMSE on the 0-255
    scale (as AS-VAE reports CIFAR). raises ValueError for different shapes, < 2 dims or values outside [0, 1].
    """
    if x.shape != x_rec.shape or x.ndim < 2:
        raise ValueError(f"x and x_rec must have the same shape (N, ...), got {tuple(x.shape)}, {tuple(x_rec.shape)}")
    for name, t in (("x", x), ("x_rec", x_rec)):
        if t.numel() and not (t.min() >= 0 and t.max() <= 1):
            raise ValueError(f"{name} must be in [0, 1], got range [{t.min():.3g}, {t.max():.3g}]")
    mse = (x.double() - x_rec.double()).pow(2).flatten(1).mean(1)
    out = {}
    for name, vals, what in (("mse", mse, "mean squared error, pixels in [0, 1]"),
                             ("rmse", mse.sqrt(), "root mean squared error, pixels in [0, 1]"),
                             ("rmse_255", 255 * mse.sqrt(), "root mean squared error, pixels in [0, 255]")):
        m, s = mean_sem(vals)
        out[name] = {"value": m, "sem": s, "n": len(vals), "implementation": f"per-image {what}; mean over images"}
    return out


_LPIPS_BACKBONES = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def lpips_distance(x: torch.Tensor, x_rec: torch.Tensor, *, net: str = "alex", device="cpu", batch_size: int = 100,
                   download: bool = False) -> dict:
    """LPIPS v0.1 (torchmetrics; the authors' linear layers) between x and x_rec (N, C in {1, 3}, H, W) in [0, 1].

    Grey is repeated to RGB; images under 64 px a side are resized bilinearly to 64 x 64 (the backbones'
    pooling needs it; LPIPS was trained on 64 x 64 patches). The ImageNet backbone weights are read from
    ``$TORCH_HOME/hub/checkpoints`` (torch.hub's cache); ``download=True`` lets torchvision fetch them.
    returns {"value", "sem", "n", "net", "implementation"}. raises MetricUnavailable when the backbone
    weights are missing (or cannot be downloaded), ValueError for bad input.
    """
    import torchvision
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {sorted(_LPIPS_BACKBONES)}, got {net!r}")
    check_images(x, "lpips_distance (x)")
    check_images(x_rec, "lpips_distance (x_rec)")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {tuple(x.shape)} and {tuple(x_rec.shape)}")
    url = torchvision.models.get_model_weights(_LPIPS_BACKBONES[net]).DEFAULT.url
    ckpt = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    fix = f"put {ckpt.name} (from {url}) into {ckpt.parent} ($TORCH_HOME/hub/checkpoints), or pass download=True"
    if not download and not ckpt.is_file():
        raise MetricUnavailable(f"LPIPS ({net}) needs torchvision's ImageNet weights {ckpt}, which are missing: {fix}")
    try:
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="none", normalize=True).to(device)
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError
        raise MetricUnavailable(f"LPIPS ({net}): loading {ckpt.name} failed ({err}): {fix}") from err

    def prep(t):
        t = t.to(device, torch.float32).expand(-1, 3, -1, -1)
        small = min(t.shape[2:]) < 64
        return F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False).clamp(0, 1) if small else t

    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            metric.update(prep(x[i:i + batch_size]), prep(x_rec[i:i + batch_size]))
        vals = metric.compute().flatten().cpu()
    m, s = mean_sem(vals)
    return {"value": m, "sem": s, "n": len(vals), "net": net,
            "implementation": f"LPIPS v0.1 ({net}), torchmetrics; grey -> RGB, under 64 px resized to 64 x 64"}

"""Plotting helpers: figures saved to ``figures/`` atomically and with fixed metadata, so that an
unchanged regeneration leaves ``git diff`` empty."""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from .paths import figures_dir
from .runs import atomic_write_bytes

_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def savefig(fig, name: str, formats=("png",), dpi: int = 120) -> list:
    """Save ``fig`` as ``figures/<name>.<fmt>`` for each format; returns the paths written."""
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_METADATA.get(fmt))
        path = figures_dir() / f"{name}.{fmt}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def image_grid(x: torch.Tensor, nrow: int = 10, ax=None, title: str | None = None):
    """Show images x (B, C, H, W) in [0, 1] as one grid (``torchvision.utils.make_grid``) on ``ax``."""
    grid = make_grid(x.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    ax = ax or plt.gca()
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def learning_curves(histories: dict[str, list[dict]], key: str, ax=None, ylabel: str | None = None):
    """Plot ``row[key]`` against ``row["step"]`` for each named history (from :func:`lib.train.fit`)."""
    ax = ax or plt.gca()
    for label, hist in histories.items():
        rows = [r for r in hist if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel or key)
    ax.legend()
    return ax

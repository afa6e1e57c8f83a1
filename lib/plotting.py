"""Plotting helpers: figures saved to ``figures/<profile>/`` atomically and with fixed metadata, so that an
unchanged regeneration leaves ``git diff`` empty."""
from __future__ import annotations

import io
from typing import Callable

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from .paths import figures_dir
from .runs import atomic_write_bytes

_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def savefig(fig, name: str, formats=("png",), dpi: int = 120) -> list:
    """Save ``fig`` as ``figures/<profile>/<name>.<fmt>`` (:func:`lib.paths.figures_dir`) for each format; returns the paths written."""
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


def samples_and_reconstructions(models: dict, x: torch.Tensor, sample: Callable, reconstruct: Callable, *,
                                labels: dict[str, str] | None = None, sample_caption: str | Callable = "samples",
                                panel_size: tuple[float, float] = (3.2, 6.6), nrow: int = 8, title: str | None = None):
    """One figure, a column per model: its samples on top, data | reconstruction pairs below.

    models: name -> model, in column order. For each model in turn (the random draws happen in this order),
    ``sample(name, model)`` gives the top panel's images (B, C, H, W) in [0, 1], then ``reconstruct(name, model, x)``
    the reconstructions (N, C, H, W) in [0, 1] of x (N, C, H, W) in [0, 1], shown interleaved (data,
    reconstruction, data, ...), ``nrow`` images a row. A ``reconstruct`` that raises NotImplementedError (a GAN:
    no encoder) leaves its panel blank but for a note. Both run under ``torch.no_grad()``. labels: name -> the
    name in the titles (default: the name). sample_caption: the top titles' ``"<label>: <caption>"``, a string or
    name -> string. panel_size: (width, height) in inches of one column. title: the figure's suptitle.
    returns: the figure; its axes are a 2 x len(models) grid.
    """
    labels = labels or {}
    fig, axes = plt.subplots(2, len(models), figsize=(panel_size[0] * len(models), panel_size[1]), layout="constrained")
    axes = axes.reshape(2, -1)
    with torch.no_grad():
        for j, (name, model) in enumerate(models.items()):
            label = labels.get(name, name)
            caption = sample_caption(name) if callable(sample_caption) else sample_caption
            image_grid(sample(name, model), nrow=nrow, ax=axes[0, j], title=f"{label}: {caption}")
            try:
                rec = reconstruct(name, model, x)
            except NotImplementedError:
                axes[1, j].set_axis_off()
                axes[1, j].text(0.5, 0.5, "no encoder:\nno reconstruction", ha="center", va="center", fontsize=12)
                continue
            image_grid(torch.stack([x, rec], 1).flatten(0, 1), nrow=nrow, ax=axes[1, j],
                       title=f"{label}: data | reconstruction")
    if title:
        fig.suptitle(title)
    return fig


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

"""Plotting helpers: one figure style for the whole repository, and figures saved to ``figures/<profile>/`` as PNG
and PDF, atomically and with fixed metadata, so that an unchanged regeneration leaves ``git diff`` empty.

The style (:data:`STYLE`, applied by importing this module and again by :func:`use_style`) is sized for a paper set
in one or two columns: a figure's width is :data:`ONE_COLUMN` (3.3 in) or :data:`TWO_COLUMN` (7.0 in), never more,
and its height is what it needs; the figure is then included at its natural size, so the font sizes below are the
printed ones. Fonts: DejaVu Sans (sans-serif, shipped with matplotlib) at 9 pt, axis labels 9 pt, titles 9-10 pt,
tick labels and legends 8 pt (no text is set below 8 pt); mathtext in the matching ``dejavusans`` set. Lines 1.2 pt.
Legends have a semi-transparent frame (alpha 0.8) so that data behind them stay visible; notebooks place them
outside the axes or in empty corners, multi-panel figures one shared ``fig.legend`` below the panels.
PDFs embed their fonts as TrueType (``pdf.fonttype`` 42: editable text, no Type 3 fonts); raster output is 200 dpi,
so a two-column figure is at most 1,400 pixels wide. :func:`savefig` refuses a wider figure.
"""
from __future__ import annotations

import io
import struct
from typing import Callable

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from .paths import figures_dir
from .runs import atomic_write_bytes

ONE_COLUMN = 3.3  # inches: the width of a figure set in one column of a two-column paper
TWO_COLUMN = 7.0  # inches: the width of a figure set across both columns; the widest figure allowed

STYLE = {
    "savefig.pad_inches": 0.02,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "figure.titlesize": 10,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.framealpha": 0.8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.linewidth": 0.8,
    "patch.linewidth": 0.8,
    "figure.figsize": (ONE_COLUMN, 2.4),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}
"""The repository's matplotlib rcParams (see the module docstring)."""

_SAVE_STYLE = {k: STYLE[k] for k in ("savefig.dpi", "savefig.pad_inches", "pdf.fonttype", "ps.fonttype")}
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def use_style() -> None:
    """Apply :data:`STYLE` to ``matplotlib.rcParams`` (done on import; call again after anything resets them)."""
    mpl.rcParams.update(STYLE)


use_style()


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    return struct.unpack(">II", data[16:24])


def savefig(fig, name: str, formats=("png", "pdf"), dpi: int | None = None) -> list:
    """Save ``fig`` as ``figures/<profile>/<name>.<fmt>`` (:func:`lib.paths.figures_dir`) for each format (default PNG and
    PDF); returns the paths written.

    Cropped to the drawn content (``bbox_inches="tight"``), at ``dpi`` (default the style's 200) for raster formats;
    PDF fonts embedded as TrueType whatever the rcParams say at call time. No date or software version is written,
    so saving an unchanged figure again gives the same bytes. Each file is written atomically (write, then rename).
    Raises ValueError, before writing anything, if the saved figure is wider than :data:`TWO_COLUMN` inches.
    """
    dpi = dpi or STYLE["savefig.dpi"]
    blobs = {}
    with mpl.rc_context(_SAVE_STYLE):
        for fmt in dict.fromkeys(("png",) + tuple(formats)):  # PNG first: its pixel width measures the saved figure
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_METADATA.get(fmt))
            blobs[fmt] = buf.getvalue()
    width_px = _png_size(blobs["png"])[0]
    if width_px > round(TWO_COLUMN * dpi) + 1:  # + 1: the crop rounds up
        raise ValueError(f"figure {name!r} is {width_px / dpi:.2f} in ({width_px} px at {dpi} dpi) wide once saved; the "
                         f"limit is TWO_COLUMN = {TWO_COLUMN} in "
                         f"(set figsize=(TWO_COLUMN, ...) and keep legends inside the figure)")
    paths = []
    for fmt in formats:
        path = figures_dir() / f"{name}.{fmt}"
        atomic_write_bytes(path, blobs[fmt])
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
                                panel_size: tuple[float, float] | None = None, nrow: int = 8, title: str | None = None,
                                rec_caption: str = "data | reconstruction"):
    """One figure, a column per model: its samples on top, data | reconstruction pairs below.

    models: name -> model, in column order. For each model in turn (the random draws happen in this order),
    ``sample(name, model)`` gives the top panel's images (B, C, H, W) in [0, 1], then ``reconstruct(name, model, x)``
    the reconstructions (N, C, H, W) in [0, 1] of x (N, C, H, W) in [0, 1], shown interleaved (data,
    reconstruction, data, ...), ``nrow`` images a row. A ``reconstruct`` that raises NotImplementedError (a GAN:
    no encoder) leaves its panel blank but for a note. Both run under ``torch.no_grad()``. labels: name -> the
    name in the titles (default: the name). sample_caption: the top titles' ``"<label>: <caption>"``, a string or
    name -> string. panel_size: (width, height) in inches of one column (default: the columns share
    :data:`TWO_COLUMN`, each twice as high as wide plus room for the titles). title: the figure's suptitle.
    rec_caption: the bottom titles' caption (shorten it for six columns or more: they are narrower than its text).
    returns: the figure; its axes are a 2 x len(models) grid.
    """
    labels = labels or {}
    if panel_size is None:
        width = TWO_COLUMN / len(models)
        panel_size = (width, 2 * width + 0.8)
    fig, axes = plt.subplots(2, len(models), figsize=(panel_size[0] * len(models), panel_size[1]), layout="constrained")
    axes = axes.reshape(2, -1)
    with torch.no_grad():
        for j, (name, model) in enumerate(models.items()):
            label = labels.get(name, name)
            caption = sample_caption(name) if callable(sample_caption) else sample_caption
            image_grid(sample(name, model), nrow=nrow, ax=axes[0, j], title=f"{label}\n{caption}")
            try:
                rec = reconstruct(name, model, x)
            except NotImplementedError:
                axes[1, j].set_axis_off()
                axes[1, j].text(0.5, 0.5, "no encoder:\nno reconstruction", ha="center", va="center")
                continue
            image_grid(torch.stack([x, rec], 1).flatten(0, 1), nrow=nrow, ax=axes[1, j],
                       title=f"{label}\n{rec_caption}")
    if title:
        fig.suptitle(title)
    return fig


def learning_curves(histories: dict[str, list[dict]], key: str, ax=None, ylabel: str | None = None,
                    legend: bool = True):
    """Plot ``row[key]`` against ``row["step"]`` for each named history (from :func:`lib.train.fit`); ``legend=False``
    leaves the legend to the caller (placed outside the data, or one ``fig.legend`` for several panels)."""
    ax = ax or plt.gca()
    for label, hist in histories.items():
        rows = [r for r in hist if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel or key)
    if legend:
        ax.legend()
    return ax

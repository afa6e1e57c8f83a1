"""Data: MNIST read offline from IDX files, dynamic binarisation, and device-resident batches.

MNIST protocol used throughout the repository (written down once, here):

* files: ``data/MNIST/raw/*-ubyte.gz`` (committed), checked against the published MD5 of the
  *uncompressed* content on every load;
* split: the classic 50k / 10k / 10k -- the first 50,000 training images train, the last 10,000
  validate, the official 10,000 test images test (AVB's code uses 55k/5k; we keep one split for
  all papers so that numbers are comparable across notebooks);
* binarisation: *dynamic* -- every read Bernoulli-samples the grey levels in [0, 1]
  (Salakhutdinov & Murray 2008). Evaluation sets are binarised once with a fixed seed so that
  metrics are repeatable. Static binarisation gives log-likelihoods several nats different.

Users with a network may instead fetch the same bytes with ``torchvision.datasets.MNIST(root,
download=True)``; it stores the uncompressed files under ``root/MNIST/raw/``, which
:func:`load_mnist` also reads.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .paths import DATA_DIR

#: Published MD5 sums of the uncompressed IDX files (LeCun, Cortes & Burges).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
N_TRAIN, N_VAL = 50_000, 10_000

_FIX = (
    "Restore it from the repository (git checkout -- data/MNIST/raw) or, with a network, run "
    "`python -c \"import torchvision; torchvision.datasets.MNIST('data', download=True)\"` "
    "from the repository root."
)


class DataError(RuntimeError):
    """A data file is missing, truncated, or does not match its published checksum."""


def _read_idx_bytes(raw_dir: Path, name: str) -> bytes:
    """Return the uncompressed bytes of IDX file ``name`` (``.gz`` or plain), MD5-verified."""
    gz, plain = raw_dir / f"{name}.gz", raw_dir / name
    if gz.exists():
        try:
            with gzip.open(gz, "rb") as fh:
                content = fh.read()
        except (OSError, EOFError) as err:  # truncated or not gzip at all
            raise DataError(f"MNIST file {gz} is not a readable gzip file ({err}). {_FIX}") from err
        path = gz
    elif plain.exists():
        content, path = plain.read_bytes(), plain
    else:
        raise DataError(f"MNIST file {gz} is missing (nor is {plain} there). {_FIX}")
    md5 = hashlib.md5(content).hexdigest()
    if md5 != MNIST_MD5[name]:
        raise DataError(
            f"MNIST file {path} is corrupt: MD5 of its content is {md5}, "
            f"expected {MNIST_MD5[name]}. {_FIX}"
        )
    return content


def _parse_images(content: bytes, path: str) -> np.ndarray:
    magic, n, rows, cols = struct.unpack(">IIII", content[:16])
    if magic != 2051:
        raise DataError(f"{path}: wrong IDX magic {magic} for images (expected 2051). {_FIX}")
    return np.frombuffer(content, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _parse_labels(content: bytes, path: str) -> np.ndarray:
    magic, n = struct.unpack(">II", content[:8])
    if magic != 2049:
        raise DataError(f"{path}: wrong IDX magic {magic} for labels (expected 2049). {_FIX}")
    return np.frombuffer(content, dtype=np.uint8, offset=8).reshape(n)


@dataclass
class Split:
    """One split of MNIST. ``images``: (N, 1, 28, 28) float32 grey levels in [0, 1]; ``labels``: (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


def load_mnist(root: str | Path | None = None) -> dict[str, Split]:
    """Load MNIST offline and split it 50k / 10k / 10k.

    root: folder holding ``MNIST/raw/`` (default: the repository's ``data/``).
    returns: ``{"train", "val", "test"}`` -> :class:`Split` with grey levels in [0, 1].
    raises DataError naming the file and the fix when a file is missing, not gzip, has a
    wrong IDX magic number or a wrong MD5.
    """
    raw = Path(root if root is not None else DATA_DIR) / "MNIST" / "raw"
    out = {}
    for prefix in ("train", "t10k"):
        img_name, lab_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        images = _parse_images(_read_idx_bytes(raw, img_name), str(raw / img_name))
        labels = _parse_labels(_read_idx_bytes(raw, lab_name), str(raw / lab_name))
        out[prefix] = (
            torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
        )
    (xtr, ytr), (xte, yte) = out["train"], out["t10k"]
    return {
        "train": Split(xtr[:N_TRAIN], ytr[:N_TRAIN]),
        "val": Split(xtr[N_TRAIN : N_TRAIN + N_VAL], ytr[N_TRAIN : N_TRAIN + N_VAL]),
        "test": Split(xte, yte),
    }


CIFAR10_HINT = ("It is never downloaded automatically: with a network, run "
                "`python -c \"import torchvision; torchvision.datasets.CIFAR10('data', download=True)\"` "
                "from the repository root (170 MB into data/cifar-10-batches-py/).")


def load_cifar10(root: str | Path | None = None) -> dict[str, torch.Tensor]:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10`` (never downloads).

    root: folder holding ``cifar-10-batches-py/`` (default: the repository's ``data/``).
    returns: {"train": (50000, 3, 32, 32), "test": (10000, 3, 32, 32)} uint8 grey levels 0..255.
    raises DataError with the one-line fix when the files are absent or corrupt.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root if root is not None else DATA_DIR)
    try:
        sets = {k: CIFAR10(str(root), train=(k == "train"), download=False) for k in ("train", "test")}
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"CIFAR-10 not found or corrupt under {root}/cifar-10-batches-py. {CIFAR10_HINT}") from e
    return {k: torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous() for k, d in sets.items()}


def binarize(grey: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: x ~ Bernoulli(grey), same shape and dtype, values in {0, 1}.

    raises ValueError if ``grey`` has values outside [0, 1].
    """
    if grey.numel() and (grey.min() < 0 or grey.max() > 1):
        raise ValueError(
            f"binarize expects grey levels in [0, 1], got range [{grey.min():.3g}, {grey.max():.3g}]"
        )
    return torch.bernoulli(grey, generator=generator)


def fixed_binarization(grey: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One Bernoulli draw of ``grey`` with its own seeded generator: a repeatable evaluation set."""
    g = torch.Generator(device=grey.device).manual_seed(seed)
    return binarize(grey, g)


class BatchSampler:
    """Batches by index from a tensor that stays on its device (no DataLoader, no per-sample work).

    Shuffles once per epoch (``torch.randperm`` from the global torch RNG, so ``seed_everything``
    fixes it) and, when ``dynamic_binarization`` is set, Bernoulli-samples each batch as it is read.

    data: (N, ...) tensor; returns batches of shape (batch_size, ...). transform: applied to each batch instead
    of binarisation (e.g. :func:`lib.evaluate.dequantize` for 8-bit images).
    """

    def __init__(self, data: torch.Tensor, batch_size: int, dynamic_binarization: bool = True, transform=None):
        if batch_size < 1 or batch_size > data.shape[0]:
            raise ValueError(f"batch_size must be in [1, {data.shape[0]}], got {batch_size}")
        if transform is not None and dynamic_binarization:
            raise ValueError("pass dynamic_binarization=False with a transform (e.g. lib.evaluate.dequantize)")
        self.data, self.batch_size, self.dynamic, self.transform = data, batch_size, dynamic_binarization, transform
        self.perm = torch.randperm(data.shape[0], device=data.device)
        self.pos = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.perm.numel():
            self.perm = torch.randperm(self.data.shape[0], device=self.data.device)
            self.pos, self.epoch = 0, self.epoch + 1
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        batch = self.data[idx]
        if self.transform is not None:
            return self.transform(batch)
        return binarize(batch) if self.dynamic else batch

    def state_dict(self) -> dict:
        return {"perm": self.perm.cpu(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.perm = state["perm"].to(self.data.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])

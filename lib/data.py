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


def _read_idx_bytes(raw_dir: Path, name: str, md5: str | None = None, fix: str = _FIX, what: str = "MNIST") -> bytes:
    """Return the uncompressed bytes of IDX file ``name`` (``.gz`` or plain), MD5-verified when ``md5`` is given."""
    gz, plain = raw_dir / f"{name}.gz", raw_dir / name
    if gz.exists():
        try:
            with gzip.open(gz, "rb") as fh:
                content = fh.read()
        except (OSError, EOFError) as err:  # truncated or not gzip at all
            raise DataError(f"{what} file {gz} is not a readable gzip file ({err}). {fix}") from err
        path = gz
    elif plain.exists():
        content, path = plain.read_bytes(), plain
    else:
        raise DataError(f"{what} file {gz} is missing (nor is {plain} there). {fix}")
    digest = hashlib.md5(content).hexdigest()
    if md5 is not None and digest != md5:
        raise DataError(f"{what} file {path} is corrupt: MD5 of its content is {digest}, expected {md5}. {fix}")
    return content


def _parse_images(content: bytes, path: str, fix: str = _FIX) -> np.ndarray:
    if len(content) < 16:
        raise DataError(f"{path}: {len(content)} bytes, too short for an IDX image header. {fix}")
    magic, n, rows, cols = struct.unpack(">IIII", content[:16])
    if magic != 2051:
        raise DataError(f"{path}: wrong IDX magic {magic} for images (expected 2051). {fix}")
    if len(content) != 16 + n * rows * cols:
        raise DataError(f"{path}: {len(content) - 16} bytes of pixels, the header announces {n} x {rows} x {cols}. {fix}")
    return np.frombuffer(content, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _parse_labels(content: bytes, path: str, fix: str = _FIX) -> np.ndarray:
    if len(content) < 8:
        raise DataError(f"{path}: {len(content)} bytes, too short for an IDX label header. {fix}")
    magic, n = struct.unpack(">II", content[:8])
    if magic != 2049:
        raise DataError(f"{path}: wrong IDX magic {magic} for labels (expected 2049). {fix}")
    if len(content) != 8 + n:
        raise DataError(f"{path}: {len(content) - 8} labels, the header announces {n}. {fix}")
    return np.frombuffer(content, dtype=np.uint8, offset=8).reshape(n)


@dataclass
class Split:
    """One split of a dataset. ``images``: (N, C, H, W) float32 grey levels in [0, 1] (MNIST: (N, 1, 28, 28));
    ``labels``: (N,) int64 classes (CelebA: (N, 40) attributes; CIFAR-10 through :func:`load_image_dataset`: -1)."""

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
    return _load_idx_dataset(Path(root if root is not None else DATA_DIR) / "MNIST" / "raw", MNIST_MD5, _FIX, "MNIST")


def _load_idx_dataset(raw: Path, md5: dict[str, str] | None, fix: str, what: str) -> dict[str, Split]:
    """The four IDX files of an MNIST-format dataset in ``raw``, split 50k / 10k / 10k, grey levels in [0, 1]."""
    out = {}
    for prefix in ("train", "t10k"):
        img_name, lab_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        images = _parse_images(_read_idx_bytes(raw, img_name, md5 and md5[img_name], fix, what), str(raw / img_name), fix)
        labels = _parse_labels(_read_idx_bytes(raw, lab_name, md5 and md5[lab_name], fix, what), str(raw / lab_name), fix)
        if len(images) != len(labels):
            raise DataError(f"{what} files in {raw}: {len(images)} {prefix} images but {len(labels)} labels. {fix}")
        out[prefix] = (
            torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
        )
    (xtr, ytr), (xte, yte) = out["train"], out["t10k"]
    if len(xtr) < N_TRAIN + N_VAL:
        raise DataError(f"{what} files in {raw}: {len(xtr)} training images, the 50k/10k split needs 60,000. {fix}")
    return {
        "train": Split(xtr[:N_TRAIN], ytr[:N_TRAIN]),
        "val": Split(xtr[N_TRAIN : N_TRAIN + N_VAL], ytr[N_TRAIN : N_TRAIN + N_VAL]),
        "test": Split(xte, yte),
    }


#: Where :func:`load_fashion_mnist` looks, in order (``root`` first when given).
FASHION_MNIST_DIRS = (DATA_DIR / "FashionMNIST" / "raw", Path("/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_HINT = (
    "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) is never downloaded automatically. With a network, run "
    "`python -c \"import torchvision; torchvision.datasets.FashionMNIST('data', download=True)\"` from the repository "
    "root (30 MB into data/FashionMNIST/raw/); on Debian-based systems `apt install dataset-fashion-mnist` puts the same "
    "IDX files in /usr/share/datasets/fashion-mnist/.")


def load_fashion_mnist(root: str | Path | None = None) -> dict[str, Split]:
    """Fashion-MNIST, offline, in MNIST's format and split (50k / 10k / 10k; 28 x 28 grey levels in [0, 1]).

    root: a folder holding the four IDX files (``train-images-idx3-ubyte[.gz]``, ...); default: the first of
    :data:`FASHION_MNIST_DIRS` that has them. The files are checked for their IDX magic numbers and exact sizes
    (the published MD5 sums are of the upstream ``.gz`` archives, which repackaging changes, so they are not used).
    returns: ``{"train", "val", "test"}`` -> :class:`Split`.
    raises DataError saying where it looked and how to get the files when they are absent, truncated or malformed.
    """
    dirs = [Path(root)] if root is not None else list(FASHION_MNIST_DIRS)
    for d in dirs:
        if any(d.glob("train-images-idx3-ubyte*")):
            return _load_idx_dataset(d, None, FASHION_MNIST_HINT, "Fashion-MNIST")
    raise DataError(f"Fashion-MNIST not found in {', '.join(map(str, dirs))}. {FASHION_MNIST_HINT}")


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


CELEBA_HINT = ("It is never downloaded automatically: with a network, run `python -c \"import torchvision; "
               "torchvision.datasets.CelebA('data', split='all', download=True)\"` from the repository root (1.4 GB into "
               "data/celeba/; Google Drive quotas often refuse it, then fetch img_align_celeba.zip and the list_*.txt "
               "files from the CelebA site by hand).")


def load_celeba64(root: str | Path | None = None, max_images: int | None = None) -> dict[str, Split]:
    """CelebA aligned faces at 64 x 64 through ``torchvision.datasets.CelebA`` (never downloads).

    Each image is centre-cropped to 140 x 140 and resized to 64 x 64 (the usual DCGAN-style preprocessing; the AVAE
    notes do not give theirs). Splits: CelebA's official train (162,770) and test (19,962) partitions.
    root: folder holding ``celeba/`` (default: the repository's ``data/``); max_images: per split, for quick runs.
    returns: ``{"train", "test"}`` -> :class:`Split` with (N, 3, 64, 64) float32 in [0, 1] and (N, 40) attributes.
    raises DataError with the one-line fix when the files are absent or corrupt.
    """
    from torchvision import transforms
    from torchvision.datasets import CelebA

    root = Path(root if root is not None else DATA_DIR)
    tf = transforms.Compose([transforms.CenterCrop(140), transforms.Resize(64), transforms.PILToTensor()])
    out = {}
    for split in ("train", "test"):
        try:
            ds = CelebA(str(root), split=split, target_type="attr", transform=tf, download=False)
        except (RuntimeError, OSError) as e:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"CelebA not found or corrupt under {root}/celeba. {CELEBA_HINT}") from e
        n = len(ds) if max_images is None else min(max_images, len(ds))
        images = torch.empty(n, 3, 64, 64, dtype=torch.uint8)
        attrs = torch.empty(n, 40, dtype=torch.int64)
        for i in range(n):
            images[i], attrs[i] = ds[i]
        out[split] = Split(images.float() / 255, attrs)
    return out


#: Image datasets of the AVAE comparison (notebook 41): name -> image shape (C, H, W).
IMAGE_DATASETS = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "celeba64": (3, 64, 64)}


def load_image_dataset(name: str, root: str | Path | None = None, max_images: int | None = None) -> dict[str, Split]:
    """One of :data:`IMAGE_DATASETS` as ``{"train", "test"}`` (and ``"val"`` where defined) -> :class:`Split`, images
    (N, C, H, W) float32 grey levels in [0, 1]. MNIST and Fashion-MNIST: 50k/10k/10k; CIFAR-10: 50k train / 10k
    test; CelebA 64: official partitions. max_images: CelebA only (decoding 200k JPEGs takes minutes).
    raises ValueError for an unknown name; DataError (with how to get the files) when a dataset is absent.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}: use one of {sorted(IMAGE_DATASETS)}")
    if name == "mnist":
        return load_mnist(root)
    if name == "fashion_mnist":
        return load_fashion_mnist(root)
    if name == "celeba64":
        return load_celeba64(root, max_images)
    cifar = load_cifar10(root)
    return {k: Split(v.float() / 255, torch.full((len(v),), -1, dtype=torch.int64)) for k, v in cifar.items()}


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
    """One Bernoulli draw of ``grey`` with its own seeded generator: a repeatable evaluation set.

    grey: any shape, pixel probabilities in [0, 1] (e.g. MNIST test images (N, 1, 28, 28)). seed: the generator's
    seed (the test set is binarised once with seed 0). returns: values in {0, 1}, same shape, dtype and device;
    the global RNG is untouched. raises what :func:`binarize` raises for values outside [0, 1].
    """
    g = torch.Generator(device=grey.device).manual_seed(seed)
    return binarize(grey, g)


class BatchSampler:
    """Batches by index from a tensor that stays on its device (no DataLoader, no per-sample work).

    Shuffles once per epoch (``torch.randperm`` from the global torch RNG, so ``seed_everything``
    fixes it) and, when ``dynamic_binarization`` is set, Bernoulli-samples each batch as it is read.

    data: (N, ...) tensor; returns batches of shape (batch_size, ...). transform: applied to each batch instead
    of binarisation (e.g. :func:`lib.evaluate.dequantize` for 8-bit images).
    Every shuffle serves floor(N / batch_size) full batches: the last N mod batch_size rows of each permutation are
    dropped for that epoch (a different set each epoch), so every batch has exactly batch_size rows.
    raises ValueError if batch_size is not in [1, N], or if a transform is given with dynamic_binarization=True.
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
        """The next batch: (batch_size, ...) on data's device; binarised, transformed or as stored. Starts a new
        epoch (a fresh permutation from the global torch RNG) when fewer than batch_size rows remain."""
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
        """{"perm": (N,) int64 on the CPU, "pos": rows served this epoch, "epoch"}: enough to resume the exact batch
        order (checkpoints store it; the data themselves are not stored)."""
        return {"perm": self.perm.cpu(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s position, moving the permutation to data's device. The sampler must wrap the
        same data (same N) as the one that was saved; the next epoch's permutation comes from the global torch RNG,
        so restore that too for the same batches (lib.train's checkpoints store both)."""
        self.perm = state["perm"].to(self.data.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])

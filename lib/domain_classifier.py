"""MNIST-domain sample scores: a small CNN trained here (seeded, cached), and the Frechet distance and an
Inception-style score in its features / class probabilities. MNIST-specific (or Fashion-MNIST-specific, with the
same CNN trained on Fashion-MNIST's classes): *not* FID or IS, and not comparable with them.

* :func:`mnist_classifier`: the CNN for a seed, trained on the 50k training images (~20 s on one CPU thread)
  and cached under ``runs/_cache``;
* :func:`mnist_scores`: Frechet distance and classifier score of a sample set against a set of real images
  (the distances of :mod:`lib.inception_metrics`, fed with the CNN's features and logits);
* :class:`DomainScores`: the notebooks' protocol -- samples scored against n test images, with a disjoint
  set of n test images scored once as the reference (the floor of the distance, the ceiling of the score);
* :func:`bernoulli_prior_samples`: binary samples x ~ p_theta(x|z), z ~ N(0, I), the usual input.

Results are ``{"value", "implementation", n's, ...}`` dicts for ``lib.runs.finish_run``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import fixed_binarization, load_image_dataset
from .inception_metrics import check_images, frechet_distance, inception_score
from .paths import runs_dir
from .runs import atomic_write_bytes

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
        check_images(x, "MNISTClassifier", channels=(1,))
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
    show = not os.environ.get("CI") if progress is None else progress
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MNISTClassifier(hp["widths"], hp["hidden"])
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=hp["steps"])
        for _ in tqdm(range(hp["steps"]), desc=f"{DOMAIN_DATASETS[dataset]} CNN seed {seed}", leave=False,
                      disable=not show):
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

    real, fake: (M, 1, 28, 28), (N, 1, 28, 28) in [0, 1] (the argument order of :func:`lib.inception_metrics.inception_metrics`).
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


class DomainScores:
    """The notebooks' sample-score protocol: sample sets scored against n test images, with a disjoint set of n
    test images as the reference (the floor of the distance and the ceiling of the score at this sample size).

    x_test: (N, 1, 28, 28) test images in [0, 1] (binary or grey, as the models' data), N >= 2n; ``real`` is
    x_test[:n] and ``heldout`` the :func:`mnist_scores` of x_test[n:2n] against it, computed here. classifier:
    default ``mnist_classifier(seed, device)``. No random draws (the global RNG is left as it was).
    raises ValueError when x_test has fewer than 2n images.
    """

    def __init__(self, x_test: torch.Tensor, n: int, classifier: MNISTClassifier | None = None, *, seed: int = 0,
                 device: str | torch.device = "cpu"):
        if len(x_test) < 2 * n:
            raise ValueError(f"DomainScores needs 2 n = {2 * n} test images (two disjoint sets), got {len(x_test)}")
        self.classifier = classifier if classifier is not None else mnist_classifier(seed=seed, device=device)
        self.real = x_test[:n]
        self.heldout = mnist_scores(self.real, x_test[n: 2 * n], classifier=self.classifier)

    def score(self, fake: torch.Tensor) -> dict:
        """:func:`mnist_scores` of ``fake`` (M, 1, 28, 28) in [0, 1] against ``real``: {"mnist_fd", "mnist_is"}."""
        return mnist_scores(self.real, fake, classifier=self.classifier)

    def heldout_metrics(self, key: str = "mnist") -> dict:
        """The reference's entries for ``lib.runs.finish_run``: ``heldout_test_<key>_fd`` and ``heldout_test_<key>_is``
        (key: e.g. ``"fmnist"`` for Fashion-MNIST), each ``heldout``'s dict with
        ``"split": "test vs disjoint test images"``."""
        return {f"heldout_test_{m.replace('mnist', key)}": {**self.heldout[m], "split": "test vs disjoint test images"}
                for m in ("mnist_fd", "mnist_is")}


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

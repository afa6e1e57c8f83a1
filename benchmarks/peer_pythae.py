"""Our training loop against pythae's (Chadebec et al. 2022, pip package ``pythae``) on the same networks and data.

Three pairs, each trained alternately in one process (ours, pythae, ours, pythae, ...; the median of each side):

  vae_mlp   VAE, 784-512-512 ELU MLP encoder with a Linear(512, 2 z) head, 8-512-512-784 ELU MLP decoder, z 8
  vae_conv  VAE, AVB's conv encoder (5x5 stride-2 convs 64/128/256/512, ELU) and conv decoder, z 8
  aae_avb   pythae's ``Adversarial_AE`` against our AVB (the nearest adversarial peer), MLP networks as above

Both sides get identical layers (pythae's ``BaseEncoder`` / ``BaseDecoder`` subclasses below are built from the same
``lib.nets`` builders; parameter counts are checked equal and printed), batch 100, Adam with the same lr and betas
(0.5, 0.999), and the same MNIST training images as float grey levels in [0, 1] (no binarisation on either side, so
the Bernoulli likelihood's targets are the grey levels). Ours: ``lib.train.fit`` with ``BatchSampler`` (data resident
on the device). Pythae: its own ``BaseTrainer`` / ``AdversarialTrainer`` and DataLoader path, as its users run it
(data on the CPU, moved to the device batch by batch; its progress bar on). Timed: one epoch over ``--images``
images per trial; pythae's trainer runs 2 epochs per trial and its second epoch is timed (startup -- sanity check,
optimiser set-up, output folder, final save -- and its first epoch excluded); ours takes ``--warmup`` iterations
first, then one epoch (images / batch iterations) is timed.

Unavoidable differences, stated: pythae's VAE encoder outputs a log-variance and its decoder a sigmoid (BCE on
probabilities); ours uses std = softplus(raw) + 1e-4 with ``torch.distributions`` and BCE on logits -- the same layers
and parameter counts, a few elementwise ops apart. ``aae_avb``: pythae's adversarial autoencoder has a Gaussian
encoder and a discriminator on z only (z-512-512-1), and takes one batch per iteration for both updates (one forward
pass, two backward passes); our AVB has an implicit encoder (32 noise inputs concatenated to x), an adversary
T(x, z) on the pair (784+8)-512-512-1, and draws a fresh batch for each player step (2 batches per iteration). For
that pair the ratio compares iterations per second (one update of each side per iteration), not equal work.

usage: python -m benchmarks.peer_pythae [--pairs vae_mlp,vae_conv,aae_avb] [--device auto|cpu|cuda] [--threads N]
           [--images N] [--conv-images N] [--trials N] [--out DIR]
Needs pythae: pip install -e '.[bench]' (check that it keeps your torch: see benchmarks/README.md).
Writes <out>/peer_pythae_<device>[_<threads>t].json atomically and prints a table.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from lib import registry
from lib.data import BatchSampler, load_mnist
from lib.nets import decoder_net, make_trunk, mlp
from lib.runs import env_info, write_json
from lib.train import fit

from benchmarks.throughput import add_device_arguments, device_from_args, result_tag, sync

X_SHAPE = (1, 28, 28)
HIDDEN = (512, 512)
Z_DIM = 8
BATCH = 100
BETAS = (0.5, 0.999)
LR = {"vae": 1e-3, "primal": 3e-4, "adversary": 6e-4}  # notebook 12's quick settings
PAIRS = ("vae_mlp", "vae_conv", "aae_avb")


def import_pythae():
    """pythae's modules, with its INFO loggers quietened. raises SystemExit with the install line if it is absent."""
    try:
        import pythae  # noqa: F401
        from pythae.data.datasets import BaseDataset
        from pythae.models import VAE, Adversarial_AE, Adversarial_AE_Config, VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
        from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig, BaseTrainer, BaseTrainerConfig
        from pythae.trainers.training_callbacks import TrainingCallback
    except ImportError as e:
        raise SystemExit(f"pythae is not installed ({e}); install it with: pip install -e '.[bench]'") from e
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return locals()


def pythae_networks(pt: dict):
    """pythae encoder / decoder / discriminator classes with exactly our layers (``lib.nets`` builders)."""

    class Encoder(pt["BaseEncoder"]):
        """Our GaussianEncoder's layers: trunk -> Linear(F, 2 z) -> (mean, log-variance)."""

        def __init__(self, arch: str):
            super().__init__()
            self.trunk = make_trunk(arch, X_SHAPE, HIDDEN, "elu")
            self.head = nn.Linear(self.trunk.out_dim, 2 * Z_DIM)

        def forward(self, x):
            mu, log_var = self.head(self.trunk(x)).chunk(2, dim=1)
            return pt["ModelOutput"](embedding=mu, log_covariance=log_var)

    class Decoder(pt["BaseDecoder"]):
        """Our BernoulliDecoder's layers, with a sigmoid (pythae's BCE takes probabilities)."""

        def __init__(self, arch: str):
            super().__init__()
            self.net = decoder_net(Z_DIM, X_SHAPE, arch, tuple(reversed(HIDDEN)), "elu")

        def forward(self, z):
            return pt["ModelOutput"](reconstruction=torch.sigmoid(self.net(z)).view(z.shape[0], *X_SHAPE))

    class Discriminator(pt["BaseDiscriminator"]):
        """z -> 512 -> 512 -> 1 ELU MLP, sigmoid output (pythae's AAE discriminator sees z only)."""

        def __init__(self):
            super().__init__()
            self.net = mlp([Z_DIM, *HIDDEN, 1], "elu")

        def forward(self, z):
            return pt["ModelOutput"](embedding=torch.sigmoid(self.net(z)))

    return Encoder, Decoder, Discriminator


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def ours_model(pair: str) -> nn.Module:
    if pair == "aae_avb":
        return registry.build("avb", x_shape=X_SHAPE, z_dim=Z_DIM, arch="mlp", hidden=HIDDEN, noise_dim=32,
                              adversary_hidden=HIDDEN, adversary_kind="concat")
    return registry.build("vae", x_shape=X_SHAPE, z_dim=Z_DIM, arch=pair.split("_")[1], hidden=HIDDEN)


def pythae_model(pt: dict, pair: str) -> nn.Module:
    Encoder, Decoder, Discriminator = pythae_networks(pt)
    if pair == "aae_avb":
        cfg = pt["Adversarial_AE_Config"](input_dim=X_SHAPE, latent_dim=Z_DIM, reconstruction_loss="bce")
        return pt["Adversarial_AE"](cfg, encoder=Encoder("mlp"), decoder=Decoder("mlp"), discriminator=Discriminator())
    cfg = pt["VAEConfig"](input_dim=X_SHAPE, latent_dim=Z_DIM, reconstruction_loss="bce")
    arch = pair.split("_")[1]
    return pt["VAE"](cfg, encoder=Encoder(arch), decoder=Decoder(arch))


def time_ours(pair: str, x: torch.Tensor, device: torch.device, warmup: int) -> float:
    """Seconds for one epoch over x (len(x) / BATCH iterations of fit), after ``warmup`` iterations."""
    model = ours_model(pair).to(device)
    lr = {"primal": LR["primal"], "adversary": LR["adversary"]} if pair == "aae_avb" else {"model": LR["vae"]}
    sampler = BatchSampler(x.to(device), BATCH, dynamic_binarization=False)
    fit(model, sampler, steps=warmup, lr=lr, betas=BETAS, progress=False, run_dir=None)
    steps = x.shape[0] // BATCH
    sync(device)
    t0 = time.perf_counter()
    fit(model, sampler, steps=steps, lr=lr, betas=BETAS, progress=False, run_dir=None, log_every=steps)
    sync(device)
    return time.perf_counter() - t0


def time_pythae(pt: dict, pair: str, x: torch.Tensor, device: torch.device) -> float:
    """Seconds of the second epoch of pythae's trainer over x (epoch boundaries from a callback)."""

    class EpochTimer(pt["TrainingCallback"]):
        def __init__(self):
            self.starts, self.ends = [], []

        def on_epoch_begin(self, training_config, **kwargs):
            sync(device)
            self.starts.append(time.perf_counter())

        def on_epoch_end(self, training_config, **kwargs):
            sync(device)
            self.ends.append(time.perf_counter())

    model = pythae_model(pt, pair)
    data = pt["BaseDataset"](x.cpu(), torch.zeros(x.shape[0]))
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out_dir:
        common = dict(output_dir=out_dir, per_device_train_batch_size=BATCH, num_epochs=2,
                      no_cuda=device.type != "cuda")
        if pair == "aae_avb":
            cfg = pt["AdversarialTrainerConfig"](
                **common, autoencoder_learning_rate=LR["primal"], discriminator_learning_rate=LR["adversary"],
                autoencoder_optimizer_params={"betas": BETAS}, discriminator_optimizer_params={"betas": BETAS})
            trainer = pt["AdversarialTrainer"](model, data, training_config=cfg, callbacks=[timer])
        else:
            cfg = pt["BaseTrainerConfig"](**common, learning_rate=LR["vae"], optimizer_params={"betas": BETAS})
            trainer = pt["BaseTrainer"](model, data, training_config=cfg, callbacks=[timer])
        trainer.train()
    return timer.ends[1] - timer.starts[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated, from {', '.join(PAIRS)}")
    add_device_arguments(ap)
    ap.add_argument("--images", type=int, help="training images per timed epoch, MLP pairs (default 10000; GPU 50000)")
    ap.add_argument("--conv-images", type=int, help="the same for the conv VAE (default 1000; GPU 50000)")
    ap.add_argument("--trials", type=int, default=3, help="alternating trials per side; the median is reported")
    ap.add_argument("--warmup", type=int, default=5, help="our warm-up iterations per trial")
    a = ap.parse_args(argv)
    pairs = [p.strip() for p in a.pairs.split(",") if p.strip()]
    if not pairs or any(p not in PAIRS for p in pairs):
        ap.error(f"--pairs {a.pairs!r}: use a comma-separated subset of {', '.join(PAIRS)}")
    for opt in ("images", "conv_images", "trials", "warmup"):
        if getattr(a, opt) is not None and getattr(a, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be >= 1")
    device = device_from_args(ap, a)
    on_gpu = device.type == "cuda"
    images = {"mlp": a.images or (50_000 if on_gpu else 10_000), "conv": a.conv_images or (50_000 if on_gpu else 1_000)}
    for arch, n in images.items():
        if n < 2 * BATCH or n > 50_000:
            ap.error(f"images per epoch ({arch}) must be in [{2 * BATCH}, 50000], got {n}")
    pt = import_pythae()
    train = load_mnist()["train"].images

    rows = []
    for pair in pairs:
        arch = "conv" if pair == "vae_conv" else "mlp"
        x = train[: images[arch] // BATCH * BATCH]
        ours_p, theirs_p = n_params(ours_model(pair)), n_params(pythae_model(pt, pair))
        if pair != "aae_avb" and ours_p != theirs_p:
            raise AssertionError(f"{pair}: parameter counts differ, ours {ours_p} vs pythae {theirs_p}")
        print(f"{pair}: parameters ours {ours_p:,}, pythae {theirs_p:,}; {x.shape[0]} images per epoch", flush=True)
        ours_s, theirs_s = [], []
        for trial in range(a.trials):
            ours_s.append(time_ours(pair, x, device, a.warmup))
            theirs_s.append(time_pythae(pt, pair, x, device))
            print(f"  trial {trial + 1}: ours {ours_s[-1]:.3f} s, pythae {theirs_s[-1]:.3f} s per epoch", flush=True)
        ours_med, theirs_med = statistics.median(ours_s), statistics.median(theirs_s)
        rows.append({"pair": pair, "images_per_epoch": x.shape[0], "batch": BATCH, "iterations_per_epoch": x.shape[0] // BATCH,
                     "parameters_ours": ours_p, "parameters_pythae": theirs_p,
                     "seconds_per_epoch_ours": ours_s, "seconds_per_epoch_pythae": theirs_s,
                     "median_seconds_ours": ours_med, "median_seconds_pythae": theirs_med,
                     "images_per_s_ours": x.shape[0] / ours_med, "images_per_s_pythae": x.shape[0] / theirs_med,
                     "throughput_ratio_ours_over_pythae": theirs_med / ours_med,
                     "seconds_per_50k_epoch_ours": ours_med * 50_000 / x.shape[0],
                     "seconds_per_50k_epoch_pythae": theirs_med * 50_000 / x.shape[0]})
    info = env_info(device)
    out = {"benchmark": "peer_pythae", "device": info["device_name"], "torch": torch.__version__,
           "pythae": package_version("pythae"), "threads": torch.get_num_threads(),
           "settings": {"batch": BATCH, "z_dim": Z_DIM, "hidden": HIDDEN, "lr": LR, "betas": BETAS, "trials": a.trials,
                        "our_warmup_iterations": a.warmup, "pythae_timed_epoch": 2,
                        "data": "MNIST training grey levels (first images_per_epoch), float32, no binarisation"},
           "definitions": {"throughput_ratio_ours_over_pythae": "median pythae seconds per epoch / median ours (> 1: we are faster)",
                           "images_per_s": "images_per_epoch / median seconds per epoch (one batch per iteration)"},
           "pairs": rows, "env": info,
           "command": " ".join(["python -m benchmarks.peer_pythae", *(sys.argv[1:] if argv is None else argv)])}
    path = Path(a.out) / f"peer_pythae_{result_tag(device)}.json"
    write_json(path, out)
    table = pd.DataFrame([{"pair": r["pair"], "images/epoch": r["images_per_epoch"], "params ours": r["parameters_ours"],
                           "params pythae": r["parameters_pythae"], "ours s/epoch": r["median_seconds_ours"],
                           "pythae s/epoch": r["median_seconds_pythae"], "ours images/s": r["images_per_s_ours"],
                           "pythae images/s": r["images_per_s_pythae"],
                           "ours/pythae": r["throughput_ratio_ours_over_pythae"]} for r in rows])
    print(f"\n{info['device_name']}, torch {torch.__version__}, pythae {out['pythae']}, batch {BATCH}; "
          "ours/pythae > 1 means we are faster")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()

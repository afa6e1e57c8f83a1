"""Training throughput of every method at its paper architecture, timed through ``lib.train.fit`` on real MNIST.

One process builds each method as its notebook's ``full`` profile does (paper architecture, batch size and Adam
settings), warms it up, then times ``fit(..., progress=False, run_dir=None)`` for a number of iterations (CUDA is
synchronised before and after). Methods and their settings (see ``CASES``):

  vae_mlp   VAE, 784-512-512 MLPs, z 8, batch 100, dynamic binarisation (notebook 12, quick architecture)
  vae_conv  VAE, AVB's conv encoder/decoder, z 8, batch 128 (notebook 12, full)
  avb_conv  AVB, conv encoder with noise at every layer, inner-product adversary 3x1024, z 8, batch 128 (notebook 12)
  asvae     AS-VAE, 784-512-512 MLPs, 80 planar flows, discriminators 2x1024, z 32, batch 100 (notebook 21, full)
  bavae     BAVAE, conv encoder/implicit conv decoder, discriminators 2x1024, z 8, batch 100 (notebook 31, full)
  avae      AVAE, DCGAN width 64, z 100, batch 64 (notebook 41, full; lib.registry)
  gan       GAN (DCGAN), width 64, z 100, batch 64 (notebook 41, full; lib.registry)

Numbers (per method):
  iterations/s          calls of the loop body of ``fit``: every player of ``method.schedule`` steps, k times each,
                        and every step draws a fresh batch, so one iteration consumes ``batches_per_iteration``
                        = sum of k over the players (VAE 1, AVB 2, AVAE 3).
  images/s              iterations/s x batch: one batch per iteration, the convention of the notebooks' step counts.
  images_drawn/s        iterations/s x batch x batches_per_iteration: every image any player saw.
  s/epoch               seconds for 50,000 / batch iterations (one 50k-image MNIST training epoch, counting one batch
                        per iteration).
  GFLOP/iteration       counted by ``torch.utils.flop_counter.FlopCounterMode`` over one iteration (every player's
                        forward and backward; matmuls and convolutions only, the optimiser's elementwise work not).
  GFLOP/s               GFLOP/iteration x iterations/s, beside the device's measured float32 matmul peak
                        (a timed large square matmul on the same device and thread count).

usage: python -m benchmarks.throughput [--methods vae_mlp,avb_conv,...] [--device auto|cpu|cuda] [--threads N]
           [--iters N | --seconds S] [--batch B] [--compile [MODE]] [--bf16] [--ais] [--out DIR]
CPU, one thread (about 3-5 minutes):  AVAE_NUM_THREADS=1 python -m benchmarks.throughput --device cpu
GPU:                                  python -m benchmarks.throughput --device cuda --ais
Writes <out>/throughput_<device>[_<threads>t][_compile][_bf16].json atomically and prints a table.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from lib import registry
from lib.data import BatchSampler, load_mnist
from lib.runs import env_info, resolve_device, write_json
from lib.train import COMPILE_MODES, fit

X_SHAPE = (1, 28, 28)
EPOCH_IMAGES = 50_000  # the training split of lib.data


@dataclass(frozen=True)
class Case:
    """One method at its paper settings: ``build()`` -> Method, Adam lr per player, batch, data mode."""

    label: str
    build: Callable[[], torch.nn.Module]
    lr: Callable[[torch.nn.Module], dict[str, float]]
    batch: int
    binarize: bool  # dynamic binarisation of each batch (notebooks 12, 21) or grey levels (31, 41)
    settings: dict = field(default_factory=dict)


def _avb_full(method: str, **kw):
    return registry.build(method, x_shape=X_SHAPE, z_dim=8, arch="conv", hidden=(512, 512), noise_dim=32,
                          adversary_hidden=(1024, 1024, 1024), adversary_kind="inner", **kw)


def _gans(method: str, **options):
    return registry.build(method, x_shape=X_SHAPE, z_dim=100, width=64, noise_dim=16, **options)


CASES: dict[str, Case] = {
    "vae_mlp": Case("VAE (MLP 784-512-512, z 8)",
                    lambda: registry.build("vae", x_shape=X_SHAPE, z_dim=8, arch="mlp", hidden=(512, 512)),
                    lambda m: {"model": 1e-3}, 100, True, {"notebook": "12 (quick architecture)"}),
    "vae_conv": Case("VAE (AVB conv, z 8)", lambda: _avb_full("vae"),
                     lambda m: {"model": 5e-5}, 128, True, {"notebook": "12 full"}),
    "avb_conv": Case("AVB (conv, inner adversary 3x1024, z 8)", lambda: _avb_full("avb", adversary_steps=1),
                     lambda m: {"primal": 5e-5, "adversary": 1e-4}, 128, True, {"notebook": "12 full"}),
    "asvae": Case("AS-VAE (MLP 512-512, 80 planar flows, z 32)",
                  lambda: registry.build("asvae", x_shape=X_SHAPE, z_dim=32, arch="mlp", hidden=(512, 512),
                                         adversary_hidden=(1024, 1024), n_flows=80, adversary_steps=1),
                  lambda m: {"primal": 1e-4, "discriminators": 1e-4}, 100, True, {"notebook": "21 full"}),
    "bavae": Case("BAVAE (conv, discriminators 2x1024, z 8)",
                  lambda: registry.build("bavae", x_shape=X_SHAPE, z_dim=8, arch="conv", hidden=(256, 256),
                                         adversary_hidden=(1024, 1024), noise_dim=16, decoder_noise_dim=16, t_max=10.0),
                  lambda m: {"primal": 3e-4, "discriminators": 6e-4}, 100, False, {"notebook": "31 full"}),
    "avae": Case("AVAE (DCGAN width 64, z 100)",
                 lambda: _gans("avae", beta=1 / 16, lz_weight=1.0, lz_variant="slides"),
                 lambda m: {p: 2e-4 for p in m.players}, 64, False, {"notebook": "41 full"}),
    "gan": Case("GAN (DCGAN width 64, z 100)", lambda: _gans("dcgan"),
                lambda m: {p: 2e-4 for p in m.players}, 64, False, {"notebook": "41 full"}),
}


RESULTS_DIR = Path(__file__).parent / "results"


def add_device_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: ``--device``, ``--threads`` and ``--out`` (read back by
    :func:`device_from_args`)."""
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: AVAE_NUM_THREADS, else torch's default)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON results")


def device_from_args(ap: argparse.ArgumentParser, a: argparse.Namespace) -> torch.device:
    """The device of ``--device`` with torch's thread count set from ``--threads``; exits through ``ap.error`` with
    the reason for a thread count below 1 or a device that is absent or unknown."""
    if a.threads is not None and a.threads < 1:
        ap.error("--threads must be >= 1")
    try:
        device = resolve_device(a.device)
    except (RuntimeError, ValueError) as err:
        ap.error(str(err))
    if a.threads:
        torch.set_num_threads(a.threads)
    return device


def result_tag(device: torch.device) -> str:
    """``cuda``, or ``cpu_<N>t`` with the CPU thread count, so one- and two-thread runs keep separate files."""
    return device.type + (f"_{torch.get_num_threads()}t" if device.type == "cpu" else "")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. Every timer in benchmarks/ brackets with it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, seconds: float = 0.5) -> dict:
    """Measured float32 matmul peak: square n x n products (n 512/1024/2048 on CPU, 4096/8192 on GPU), each size
    repeated for >= ``seconds``; the best rate over the sizes (a shared CPU's rate varies from second to second)."""
    rates = {}
    for n in ((4096, 8192) if device.type == "cuda" else (512, 1024, 2048)):
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        a @ b  # warm-up
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
            sync(device)
        rates[n] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
    best = max(rates, key=rates.get)
    return {"gflops": rates[best], "n": best, "gflops_by_n": rates,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def count_flops(method, sampler, lr: dict) -> float:
    """FLOPs of one iteration of ``fit`` (all players' forward and backward), by FlopCounterMode (run eagerly:
    compilation and bf16 autocast change the speed, not the count)."""
    with FlopCounterMode(display=False) as counter:
        fit(method, sampler, steps=1, lr=lr, progress=False, run_dir=None)
    return float(counter.get_total_flops())


def time_case(name: str, case: Case, train_x: torch.Tensor, device: torch.device, *, batch: int | None,
              iters: int | None, seconds: float, warmup: int, fit_kw: dict) -> dict:
    """Count FLOPs, warm up (compilation happens here), time ``warmup`` iterations to pick the iteration count
    (``iters``, or enough for >= ``seconds``), then time one ``fit`` call of that many iterations."""
    torch.manual_seed(0)
    method = case.build().to(device)
    batch = batch or case.batch
    sampler = BatchSampler(train_x, batch, dynamic_binarization=case.binarize)
    lr = case.lr(method)
    batches_per_iter = sum(k for _, k in method.schedule)
    flops = count_flops(method, sampler, lr)
    fit(method, sampler, steps=warmup, lr=lr, progress=False, run_dir=None, **fit_kw)
    sync(device)
    t0 = time.perf_counter()
    fit(method, sampler, steps=warmup, lr=lr, progress=False, run_dir=None, **fit_kw)
    sync(device)
    per_iter = (time.perf_counter() - t0) / warmup
    n = iters if iters else max(3, math.ceil(seconds / max(per_iter, 1e-6)))
    sync(device)
    t0 = time.perf_counter()
    fit(method, sampler, steps=n, lr=lr, progress=False, run_dir=None, log_every=n, **fit_kw)
    sync(device)
    elapsed = time.perf_counter() - t0
    its = n / elapsed
    return {"method": name, "label": case.label, "batch": batch, "batches_per_iteration": batches_per_iter,
            "schedule": [list(s) for s in method.schedule], "dynamic_binarization": case.binarize,
            "parameters": sum(p.numel() for p in method.parameters()), "lr": lr, "settings": case.settings,
            "iterations_timed": n, "seconds_timed": elapsed, "iterations_per_s": its, "images_per_s": its * batch,
            "images_drawn_per_s": its * batch * batches_per_iter,
            "seconds_per_50k_epoch": EPOCH_IMAGES / batch / its, "gflop_per_iteration": flops / 1e9,
            "gflops": flops / 1e9 * its}


def fit_options(a: argparse.Namespace) -> dict:
    """The keyword arguments for ``fit`` that --compile / --bf16 ask for (both recorded in the JSON)."""
    kw = {}
    if a.compile is not None:
        kw["compile"] = a.compile
    if a.bf16:
        kw["autocast_bf16"] = True
    return kw


def run_ais(device: torch.device, a: argparse.Namespace) -> dict:
    """AIS test images/s at AVB's evaluation settings (1000 steps, 5 chains, 10 leapfrog), via benchmarks.ais_throughput."""
    from benchmarks.ais_throughput import main as ais_main

    on_gpu = device.type == "cuda"
    images = a.ais_images or (2048 if on_gpu else 10)
    steps = a.ais_steps or (1000 if on_gpu else 20)
    argv = ["--arch", "conv", "--device", str(device), "--images", str(images), "--steps", str(steps),
            "--batch", str(a.ais_batch or min(images, 2048 if on_gpu else 100)), "--out", a.out]
    out = ais_main(argv)
    out["seconds_for_2048_images_at_1000_steps"] = out["seconds_per_1000_images_at_1000_steps"] * 2.048
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    add_device_arguments(ap)
    ap.add_argument("--iters", type=int, help="iterations timed per method (default: time-boxed by --seconds)")
    ap.add_argument("--seconds", type=float, default=15.0, help="time box per method when --iters is not given")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up iterations before timing (after the FLOP count)")
    ap.add_argument("--batch", type=int, help="batch size for every method (default: each method's paper batch)")
    ap.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                    help=f"torch.compile the losses (fit's compile=MODE; one of {', '.join(COMPILE_MODES)}; "
                         "'reduce-overhead' captures CUDA graphs on a GPU)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast of the losses (fit's autocast_bf16=True)")
    ap.add_argument("--ais", action="store_true", help="also time AIS on the conv decoder (benchmarks.ais_throughput)")
    ap.add_argument("--ais-images", type=int, help="AIS test images (default: 2048 on GPU, 10 on CPU)")
    ap.add_argument("--ais-steps", type=int, help="AIS steps timed, scaled to 1000 (default: 1000 on GPU, 20 on CPU)")
    ap.add_argument("--ais-batch", type=int, help="AIS images per batch (default: all of them on GPU, up to 2048; 100 on CPU)")
    a = ap.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in CASES]
    if unknown or not methods:
        ap.error(f"unknown method(s) {unknown}: use a comma-separated subset of {', '.join(CASES)}")
    for opt in ("iters", "batch", "warmup", "ais_images", "ais_steps", "ais_batch"):
        if getattr(a, opt) is not None and getattr(a, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be >= 1")
    if a.seconds <= 0:
        ap.error("--seconds must be > 0")
    fit_kw = fit_options(a)
    device = device_from_args(ap, a)
    train_x = load_mnist()["train"].images.to(device)
    peak = matmul_peak_gflops(device)
    rows = []
    for name in methods:
        row = time_case(name, CASES[name], train_x, device, batch=a.batch, iters=a.iters, seconds=a.seconds,
                        warmup=a.warmup, fit_kw=fit_kw)
        row["fraction_of_matmul_peak"] = row["gflops"] / peak["gflops"]
        rows.append(row)
        print(f"{name}: {row['iterations_per_s']:.3g} it/s, {row['seconds_per_50k_epoch']:.4g} s per 50k epoch",
              flush=True)
    info = env_info(device)
    out = {"benchmark": "throughput", "device": info["device_name"], "torch": torch.__version__,
           "threads": torch.get_num_threads(), "fit_options": fit_kw, "warmup_iterations": a.warmup, "matmul_peak": peak, "methods": rows,
           "epoch_images": EPOCH_IMAGES, "env": info,
           "definitions": {
               "iterations_per_s": "loop bodies of lib.train.fit per second: every player steps k times, each step on a fresh batch",
               "batches_per_iteration": "sum of k over method.schedule: batches drawn by one iteration",
               "images_per_s": "iterations_per_s * batch (one batch per iteration)",
               "images_drawn_per_s": "iterations_per_s * batch * batches_per_iteration",
               "seconds_per_50k_epoch": "50000 / batch iterations, in seconds",
               "gflop_per_iteration": "FlopCounterMode over one iteration: all players' forward + backward",
               "gflops": "gflop_per_iteration * iterations_per_s"},
           "command": " ".join(["python -m benchmarks.throughput", *(sys.argv[1:] if argv is None else argv)])}
    table = pd.DataFrame([{"method": r["method"], "batch": r["batch"], "batches/it": r["batches_per_iteration"],
                           "params (M)": r["parameters"] / 1e6, "it/s": r["iterations_per_s"],
                           "images/s": r["images_per_s"], "s/epoch(50k)": r["seconds_per_50k_epoch"],
                           "GFLOP/it": r["gflop_per_iteration"], "GFLOP/s": r["gflops"],
                           "% peak": 100 * r["fraction_of_matmul_peak"]} for r in rows])
    if a.ais:
        out["ais"] = run_ais(device, a)
    suffix = (f"_compile-{a.compile}" if a.compile else "") + ("_bf16" if a.bf16 else "")
    path = Path(a.out) / f"throughput_{result_tag(device)}{suffix}.json"
    write_json(path, out)
    print(f"\n{info['device_name']}, torch {torch.__version__}, float32 matmul peak {peak['gflops']:.1f} GFLOP/s "
          f"(n={peak['n']}); images/s count one batch per iteration, batches/it = batches one iteration draws")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()

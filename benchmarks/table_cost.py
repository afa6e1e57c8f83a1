"""Predicted device hours of the paper-scale (``full`` profile) MNIST table, per row: timed slices, multiplied out.

For each MNIST experiment of the full profile and each model its notebook trains, the model is built at the notebook's
full settings and ``fit`` is timed for ``--seconds`` on this device (``benchmarks.throughput.time_case``); training
hours = the notebook's iterations x its seeds / the measured iterations per second. AIS evaluation (notebooks 12 and
21: ``n_test_ais`` test images x ``ais_steps``, 5 chains, 10 leapfrog steps; notebook 90: AIS at each of its
``ais_steps`` on ``test_images`` images, and BDMC, counted as forward plus reverse AIS, at each ``bdmc_steps`` on
``bdmc_images`` images) is timed on a slice (``--ais-images`` images, ``--ais-steps`` steps) with
``lib.ais.evaluate_ais`` on the model's untrained decoder (weights do not change the cost) and scaled linearly in
images and in HMC transitions (the cost is (T - 1) x 10 + 1 decoder passes per chain).

Not counted: ELBO, IWAE and sample-quality evaluation (a few percent of AIS at these settings), notebook 31's 1-d toy
models, notebook 90's linear-Gaussian check, data loading and notebook start-up. The settings, models and seeds are
read from ``paper_reproductions/params/<experiment>.full.yaml`` (its ``SETTINGS``, over the notebook's parameter
defaults, see :func:`profile_settings`), the same file the runner passes to the notebook, so the prediction follows
them; only each notebook's few-line model constructor is repeated here (:func:`rows`), and notebook 41's ``OPTIONS``
(:func:`avae_options`). What a full run really took is measured
by the runner and shown in RESULTS.md's compute table.

usage: python -m benchmarks.table_cost [--device auto|cpu|cuda] [--threads N] [--seconds S] [--ais-images N]
           [--ais-steps T] [--only 12_avb_mnist,...] [--out DIR]
CPU, one thread (~10 min): AVAE_NUM_THREADS=1 python -m benchmarks.table_cost --device cpu
GPU (~5 min):              python -m benchmarks.table_cost --device cuda
Writes <out>/table_cost_<device>[_<N>t].json atomically and prints a table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import yaml

from lib import registry
from lib.ais import evaluate_ais
from lib.data import fixed_binarization, load_mnist
from lib.notebook import profile_parameters
from lib.paths import REPRO_DIR
from lib.runs import env_info, write_json

from benchmarks.throughput import Case, add_device_arguments, device_from_args, result_tag, sync, time_case

X_SHAPE = (1, 28, 28)
EXPERIMENTS = ("12_avb_mnist", "21_asvae_mnist", "31_bavae_mnist", "41_avae_mnist", "90_eval_ais")
CHAINS, LEAPFROG = 5, 10  # every AIS and BDMC call of these notebooks


AVAE_REGISTRY_NAME = {"vae": "dcgan_vae", "gan": "dcgan", "vaegan": "vaegan", "bigan": "bigan", "avae": "avae",
                      "avae_code": "avae"}  #: notebook 41's REGISTRY_NAME (tests/test_benchmarks.py checks the copy)


def avae_options(beta: float, vaegan_gamma: float) -> dict:
    """Notebook 41's per-model options (its ``OPTIONS``, recorded as ``options`` in each run's config.json) at KL
    weight ``beta`` (its ``BETA`` parameter) and VAE/GAN's ``vaegan_gamma`` (a key of its ``SETTINGS``); a copy,
    checked against the notebook's own by tests/test_benchmarks.py."""
    return {"vae": dict(beta=beta), "gan": {}, "vaegan": dict(gamma=vaegan_gamma, beta=beta), "bigan": {},
            "avae": dict(beta=beta, lz_weight=1.0, lz_variant="slides"),
            "avae_code": dict(beta=beta, lz_weight=1.0, lz_variant="code")}


def profile_settings(experiment: str, profile: str = "full") -> dict:
    """The settings ``experiment`` runs with in ``profile``, from its parameter file
    ``paper_reproductions/params/<experiment>.<profile>.yaml`` over the notebook's parameter defaults
    (:func:`lib.notebook.profile_parameters`): every parameter (``MODELS``, ``BETA``, ...), the keys of its ``SETTINGS``
    mapping, and for notebook 41 its ``OPTIONS`` (:func:`avae_options`). raises FileNotFoundError for a missing
    parameter file, lib.notebook.ParameterError for an unknown parameter or an incomplete SETTINGS, ValueError when
    the notebook has no SETTINGS."""
    params = profile_parameters(experiment, profile)
    if not isinstance(params.get("SETTINGS"), dict):
        raise ValueError(f"{experiment} has no SETTINGS parameter")
    out = {**params, **params["SETTINGS"]}
    if "BETA" in params:
        out["OPTIONS"] = avae_options(params["BETA"], params["SETTINGS"]["vaegan_gamma"])
    return out


def param_file(experiment: str, profile: str = "full") -> dict:
    spec = yaml.safe_load((REPRO_DIR / "params" / f"{experiment}.{profile}.yaml").read_text())
    return {"seeds": list(spec.get("seeds", [0])), **(spec.get("parameters") or {})}


def rows(experiment: str) -> list[dict]:
    """One dict per trained model of ``experiment`` at its full settings: name, build(), lr, batch, binarize, steps,
    seeds, and the AIS work [(images, steps, passes)] of one seed (passes 2 for BDMC: forward and reverse)."""
    s = profile_settings(experiment)
    p = {**s, **param_file(experiment)}
    models = [m.strip() for m in str(p.get("MODELS", "")).split(",") if m.strip()]
    out = []

    def add(name: str, build: Callable, lr: Callable, batch: int, binarize: bool, steps: int, ais: list):
        out.append({"experiment": experiment, "model": name, "build": build, "lr": lr, "batch": batch,
                    "binarize": binarize, "steps": steps, "seeds": p["seeds"], "ais": ais})

    if experiment == "12_avb_mnist":
        for name in models:
            method, z = name.split("-")
            add(name, lambda method=method, z=z: registry.build(
                    method, x_shape=X_SHAPE, z_dim=int(z), arch=s["arch"], hidden=s["hidden"], noise_dim=s["noise_dim"],
                    adversary_hidden=s["adversary_hidden"], adversary_kind=s["adversary_kind"],
                    adversary_steps=s["adversary_steps"]),
                (lambda m: {"model": s["lr_vae"]}) if method == "vae" else
                (lambda m: {"primal": s["lr_primal"], "adversary": s["lr_adversary"]}),
                s["batch_size"], True, s["steps"], [(s["n_test_ais"], s["ais_steps"], 1)])
    elif experiment == "21_asvae_mnist":
        for name in models:
            add(name, lambda name=name: registry.build(
                    name, x_shape=X_SHAPE, z_dim=s["z_dim"], arch=s["arch"], hidden=s["hidden"],
                    adversary_hidden=s["adversary_hidden"], adversary_steps=s["discriminator_steps"], n_flows=s["n_flows"]),
                lambda m: {p: {"primal": s["lr_primal"], "discriminators": s["lr_discriminators"]}[p]
                           for p in m.players},  # flow_vae: the primal only
                s["batch_size"], True, s["steps"], [(s["n_test_ais"], s["ais_steps"], 1)])
    elif experiment == "31_bavae_mnist":
        for name in models:
            kw = dict(likelihood="gaussian", decoder_std=s["decoder_std"]) if name == "vae" else dict(t_max=s["t_max"])
            add(name, lambda name=name, kw=kw: registry.build(
                    name, x_shape=X_SHAPE, z_dim=s["z_dim"], arch=s["arch"], hidden=s["hidden"],
                    adversary_hidden=s["adversary_hidden"], noise_dim=s["noise_dim"],
                    decoder_noise_dim=s["decoder_noise_dim"], **kw),
                (lambda m: {"model": s["lr_primal"]}) if name == "vae" else
                (lambda m: {"primal": s["lr_primal"], "discriminators": s["lr_discriminators"]}),
                s["batch_size"], False, s["steps"], [])
    elif experiment == "41_avae_mnist":
        for name in models:
            add(name, lambda name=name: registry.build(AVAE_REGISTRY_NAME[name],
                                                       x_shape=X_SHAPE, z_dim=s["z_dim"], width=s["width"],
                                                   noise_dim=s["noise_dim"], **s["OPTIONS"][name]),
                lambda m: {pl: s["lr"] for pl in m.players}, s["batch_size"], False, s["steps"], [])
    elif experiment == "90_eval_ais":
        add("vae", lambda: registry.build("vae", x_shape=X_SHAPE, z_dim=s["z_dim"], arch="mlp", hidden=s["vae_hidden"]),
            lambda m: {"model": s["lr"]}, s["batch_size"], True, s["vae_steps"],
            [(s["test_images"], t, 1) for t in s["ais_steps"]] + [(s["bdmc_images"], t, 2) for t in s["bdmc_steps"]])
    else:
        raise ValueError(f"unknown experiment {experiment!r}; known: {EXPERIMENTS}")
    return out


def ais_seconds_per_image_transition(model, x: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds per (test image x HMC transition) of ``evaluate_ais`` at 5 chains and 10 leapfrog steps, timed on
    ``x`` (one batch) for ``steps`` annealing steps after a 3-step warm-up."""
    model.eval()
    evaluate_ais(model, x, batch_size=x.shape[0], n_steps=3, n_chains=CHAINS, n_leapfrog=LEAPFROG, progress=False)
    sync(device)
    t0 = time.perf_counter()
    evaluate_ais(model, x, batch_size=x.shape[0], n_steps=steps, n_chains=CHAINS, n_leapfrog=LEAPFROG, progress=False)
    sync(device)
    return (time.perf_counter() - t0) / (x.shape[0] * (steps - 1))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_arguments(ap)
    ap.add_argument("--seconds", type=float, default=10.0, help="training time box per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ais-images", type=int, help="images timed per AIS slice (default: 2048 on a GPU, 10 on a CPU)")
    ap.add_argument("--ais-steps", type=int, default=10, help="annealing steps timed per AIS slice (>= 2)")
    ap.add_argument("--only", help=f"comma-separated experiments, from {', '.join(EXPERIMENTS)}")
    a = ap.parse_args(argv)
    only = [e.strip() for e in a.only.split(",")] if a.only else list(EXPERIMENTS)
    if any(e not in EXPERIMENTS for e in only):
        ap.error(f"--only names unknown experiment(s) {sorted(set(only) - set(EXPERIMENTS))}; known: {EXPERIMENTS}")
    if a.ais_steps < 2 or a.seconds <= 0:
        ap.error("--ais-steps must be >= 2 and --seconds > 0")
    device = device_from_args(ap, a)
    ais_images = a.ais_images or (2048 if device.type == "cuda" else 10)
    mnist = load_mnist()
    train_x = mnist["train"].images.to(device)
    x_ais = fixed_binarization(mnist["test"].images[:ais_images], seed=0).to(device)
    table = []
    for experiment in only:
        for r in rows(experiment):
            case = Case(f"{experiment} {r['model']}", r["build"], r["lr"], r["batch"], r["binarize"])
            t = time_case(r["model"], case, train_x, device, batch=None, iters=None, seconds=a.seconds,
                          warmup=a.warmup, fit_kw={})
            n_seeds = len(r["seeds"])
            train_h = r["steps"] * n_seeds / t["iterations_per_s"] / 3600
            ais_h, transitions = 0.0, sum(images * (steps - 1) * passes for images, steps, passes in r["ais"])
            if transitions:
                torch.manual_seed(0)
                per = ais_seconds_per_image_transition(r["build"]().to(device), x_ais, a.ais_steps, device)
                ais_h = per * transitions * n_seeds / 3600
            row = {"experiment": experiment, "model": r["model"], "seeds": n_seeds, "iterations": r["steps"],
                   "batch": r["batch"], "iterations_per_s": t["iterations_per_s"], "gflops": t["gflops"],
                   "training_h": train_h, "ais_image_transitions": transitions, "ais_h": ais_h,
                   "total_h": train_h + ais_h}
            table.append(row)
            print(f"{experiment} {r['model']}: {t['iterations_per_s']:.3g} it/s -> training {train_h:.2f} h, "
                  f"AIS {ais_h:.2f} h ({n_seeds} seed(s))", flush=True)
    total = sum(r["total_h"] for r in table)
    info = env_info(device)
    out = {"benchmark": "table_cost", "profile": "full", "rows": table, "total_h": total,
           "training_h": sum(r["training_h"] for r in table), "ais_h": sum(r["ais_h"] for r in table),
           "settings": {"seconds_per_model": a.seconds, "ais_images_timed": ais_images, "ais_steps_timed": a.ais_steps,
                        "experiments": only},
           "device": info["device_name"], "torch_threads": torch.get_num_threads(), "env": info,
           "command": " ".join(["python -m benchmarks.table_cost", *(sys.argv[1:] if argv is None else argv)])}
    path = Path(a.out) / f"table_cost_{result_tag(device)}.json"
    write_json(path, out)
    df = pd.DataFrame(table)[["experiment", "model", "seeds", "iterations", "iterations_per_s", "training_h", "ais_h",
                              "total_h"]]
    print(f"\n{info['device_name']}, torch {torch.__version__}: predicted hours of the full-profile MNIST table")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"total {total:.1f} h (training {out['training_h']:.1f} h, AIS {out['ais_h']:.1f} h); wrote {path}")
    return out


if __name__ == "__main__":
    main()

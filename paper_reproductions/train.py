"""Train one method on MNIST from the command line, in one process or data-parallel under ``torchrun``.

    python -m paper_reproductions.train --method avb --arch conv --steps 20000 --batch 128
    torchrun --standalone --nproc_per_node=4 -m paper_reproductions.train --method avb --arch conv --steps 20000 --batch 32

Under ``torchrun`` each of the N processes takes ``--batch`` images of one global batch of N x ``--batch``
(:mod:`lib.distributed`), so 4 processes with ``--batch 32`` follow the single-process run with ``--batch 128``.
Methods: every name of :mod:`lib.registry` (``--help`` lists them): the ``"nets"`` family (``vae``, ``avb``, ``asvae``,
``bavae``, ...; ``--arch mlp|conv``) on binarised MNIST, and the ``"dcgan"`` family (``dcgan_vae``, ``dcgan``,
``vaegan``, ``bigan``, ``avae``; ``--width``) on grey-level MNIST. The notebooks remain the place where models are
evaluated; this command trains, checkpoints and resumes (rerun it on the same ``--run-dir``).

Writes to ``--run-dir`` (rank 0 only): ``config.json`` (every flag, the world size), ``env.json``, ``fit_config.json``,
``metrics.jsonl``, ``ckpt.pt`` and ``final_metrics.json`` (the last logged losses and the training throughput).
"""
from __future__ import annotations

import argparse
import time

import torch

from lib import distributed as ddp
from lib import registry
from lib.data import binarize, load_mnist
from lib.runs import finish_run, new_run_dir, resolve_device, seed_everything, start_run
from lib.train import COMPILE_MODES, fit

#: per family of lib.registry: the default z_dim, whether batches are binarised, and the command-line options its
#: builders take
FAMILIES = {"nets": dict(z_dim=8, binarize=True, options=("arch",)),
            "dcgan": dict(z_dim=100, binarize=False, options=("width",))}


def parse(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring); exits with a message for steps / batch < 1 or lr <= 0."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=registry.names(), help="a name of lib.registry")
    ap.add_argument("--arch", choices=("mlp", "conv"), default="mlp", help="'nets' family only")
    ap.add_argument("--z-dim", type=int, default=None, help="default 8 ('nets' family) / 100 ('dcgan' family)")
    ap.add_argument("--width", type=int, default=64, help="DCGAN width ('dcgan' family only)")
    ap.add_argument("--steps", type=int, required=True, help="iterations (each steps every player)")
    ap.add_argument("--batch", type=int, default=64, help="images per process per player step")
    ap.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of every player")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--run-dir", default=None, help="default runs/train_<method>/<stamp>_s<seed>/")
    ap.add_argument("--ckpt-every", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--compile", choices=COMPILE_MODES, default=None)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast of the losses")
    ap.add_argument("--on-divergence", choices=("raise", "rollback"), default="raise")
    ap.add_argument("--train-images", type=int, default=None, help="train on the first N images only (smoke tests)")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.batch < 1 or a.lr <= 0:
        ap.error("--steps and --batch must be >= 1 and --lr > 0")
    return a


def main(argv=None) -> dict | None:
    """Train as the command line says. returns rank 0's final_metrics dict (None on the other ranks).
    raises RuntimeError if CUDA is asked for and absent; argparse exits with a message for bad options."""
    a = parse(argv)
    resolve_device(a.device)  # a clear error when CUDA is asked for and absent; applies AVAE_NUM_THREADS
    rank, world, device, noise_seed = ddp.setup(a.seed, a.device)
    try:
        family = FAMILIES[registry.entry(a.method).family]
        z_dim = a.z_dim or family["z_dim"]
        seed_everything(a.seed)  # identical initial parameters on every rank (rank 0's are broadcast anyway)
        model = registry.build(a.method, x_shape=(1, 28, 28), z_dim=z_dim,
                               **{k: getattr(a, k) for k in family["options"]})
        model.to(device)
        images = load_mnist()["train"].images[: a.train_images].to(device)
        sampler = ddp.ShardedSampler(images, a.batch, seed=a.seed, transform=binarize if family["binarize"] else None)
        seed_everything(noise_seed)  # rank-offset noise
        config = {**vars(a), "world_size": world, "global_batch": a.batch * world, "z_dim": z_dim,
                  "data": "MNIST train, " + ("dynamically binarised" if family["binarize"] else "grey levels")}
        # one folder for all ranks (fit writes on rank 0 only, every rank reads the checkpoint when resuming)
        run_dir = ddp.gather_objects(new_run_dir(f"train_{a.method}", a.seed, a.run_dir) if rank == 0 else None)[0]
        if rank == 0:
            start_run(f"train_{a.method}", profile="custom", seed=a.seed, device=device, config=config, run_dir=run_dir)
        t0 = time.perf_counter()
        history = fit(model, sampler, steps=a.steps, lr={p: a.lr for p in model.players}, run_dir=run_dir,
                      log_every=a.log_every, ckpt_every=a.ckpt_every, desc=a.method, compile=a.compile,
                      autocast_bf16=a.bf16, on_divergence=a.on_divergence, progress=None if rank == 0 else False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if rank != 0:
            return None
        last = history[-1] if history else {}
        metrics = {k: {"value": v, "implementation": "last logged training loss term, mean over the ranks"}
                   for k, v in last.items() if k != "step"}
        metrics["train_seconds"] = {"value": seconds, "implementation": "wall time of fit (this launch; resumed runs "
                                                                        "count the resumed part only)"}
        out = finish_run(run_dir, f"train_{a.method}", profile="custom", seed=a.seed, device=device, metrics=metrics)
        print(f"{a.method}: {a.steps} iterations, world size {world}, {seconds:.1f} s -> {run_dir}")
        return out
    finally:
        ddp.cleanup()


if __name__ == "__main__":
    main()

"""AIS wall time per 1,000 test images at AVB's evaluation settings (Mescheder et al. 2017, Sec. 5.2).

Settings: 1000 linear annealing steps, 5 chains per image, HMC with 10 leapfrog steps, images batched
together (``lib.ais.evaluate_ais``), start at a Gaussian fitted to posterior samples. The decoder is the
quick profile's 8-512-512-784 MLP or the full profile's convolutional decoder; its weights do not change
the cost, so an untrained model is timed. Fewer steps than 1000 can be timed and scaled linearly
(the cost is (T - 1) * 10 + 1 decoder forward-and-backward passes). The achieved GFLOP/s (matmuls and convolutions
counted with ``torch.utils.flop_counter``'s registry over one annealing step) is reported beside the time.

usage: python -m benchmarks.ais_throughput [--arch mlp|conv] [--images N] [--batch B] [--steps T] [--device D]
Writes benchmarks/results/ais_throughput_<arch>_<device>.json (atomic) and prints the numbers.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from lib import registry
from lib.ais import evaluate_ais
from lib.data import fixed_binarization, load_mnist
from lib.runs import env_info, resolve_device, write_json

PAPER_STEPS, PAPER_CHAINS, PAPER_LEAPFROG = 1000, 5, 10


class _FlopCount(TorchDispatchMode):
    """FLOPs of the operators torch's ``flop_registry`` knows (matmuls, convolutions): FlopCounterMode's counting
    without its module tracker, which cannot follow ``torch.autograd.grad`` on leaf tensors as HMC uses it."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def transition_flops(model, x: torch.Tensor) -> float:
    """FLOPs of one annealing step (5 chains x 10 leapfrog steps of decoder forward and backward passes) on the batch
    ``x``: the count for 3 annealing steps minus that for 2 (matmuls and convolutions only)."""
    counts = []
    for steps in (2, 3):
        with _FlopCount() as counter:
            evaluate_ais(model, x, batch_size=x.shape[0], n_steps=steps, n_chains=PAPER_CHAINS,
                         n_leapfrog=PAPER_LEAPFROG, progress=False)
        counts.append(counter.total)
    return float(counts[1] - counts[0])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("mlp", "conv"), default="mlp")
    ap.add_argument("--images", type=int, default=20, help="test images timed (default 20: about a minute on a CPU)")
    ap.add_argument("--batch", type=int, default=100, help="images per AIS batch")
    ap.add_argument("--steps", type=int, default=PAPER_STEPS, help="annealing steps timed; scaled to 1000")
    ap.add_argument("--z-dim", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args(argv)
    if a.images < 1 or a.steps < 2 or a.batch < 1:
        ap.error("--images and --batch must be >= 1 and --steps >= 2")
    device = resolve_device(a.device)
    torch.manual_seed(0)
    model = registry.build("avb", x_shape=(1, 28, 28), z_dim=a.z_dim, arch=a.arch, hidden=(512, 512)).to(device)
    x = fixed_binarization(load_mnist()["test"].images[: a.images], seed=0).to(device)
    evaluate_ais(model, x[: min(a.batch, a.images)], batch_size=a.batch, n_steps=3, n_chains=PAPER_CHAINS,
                 progress=False)  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    evaluate_ais(model, x, batch_size=a.batch, n_steps=a.steps, n_chains=PAPER_CHAINS, n_leapfrog=PAPER_LEAPFROG)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    flops_per_transition = transition_flops(model, x[: min(a.batch, a.images)]) * a.images / min(a.batch, a.images)
    gflops = flops_per_transition * (a.steps - 1) / seconds / 1e9
    scale = (PAPER_STEPS - 1) / (a.steps - 1)  # HMC transitions dominate the cost
    per_1000 = seconds * scale * 1000 / a.images
    info = env_info(device)
    out = {"benchmark": "ais_throughput", "arch": a.arch, "z_dim": a.z_dim, "images": a.images, "batch": a.batch,
           "steps_timed": a.steps, "chains": PAPER_CHAINS, "leapfrog": PAPER_LEAPFROG, "seconds": seconds,
           "seconds_per_1000_images_at_1000_steps": per_1000, "images_per_second_at_1000_steps": 1000 / per_1000,
           "gflop_per_transition": flops_per_transition / 1e9, "gflops": gflops,
           "torch_threads": torch.get_num_threads(), "device": info["device_name"], "env": info,
           "command": " ".join(["python -m benchmarks.ais_throughput", *(sys.argv[1:] if argv is None else argv)])}
    name = f"ais_throughput_{a.arch}_{device.type}.json"
    write_json(Path(a.out) / name, out)
    print(f"{info['device_name']}: AIS ({PAPER_STEPS} steps, {PAPER_CHAINS} chains, {PAPER_LEAPFROG} leapfrog), {a.arch} "
          f"decoder: {per_1000:.0f} s per 1000 images ({per_1000 / 3600:.2f} h; {1000 / per_1000:.2f} images/s)"
          + (f", scaled from {a.steps} steps" if a.steps != PAPER_STEPS else "") + f"; {gflops:.1f} GFLOP/s")
    return out


if __name__ == "__main__":
    main()

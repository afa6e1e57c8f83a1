"""How training speed on a small CPU degrades when another process competes for it, per thread setting.

    python -m benchmarks.thread_contention                 # 3 settings x (alone, with one competing process)
    python -m benchmarks.thread_contention --steps 200 --repeats 3

Each measurement is a fresh subprocess that trains the quick profile's MLP VAE (784-512-512, z 32, batch 100, Adam) for
``--steps`` steps after a warm-up and reports milliseconds per step. Settings: one torch thread; two threads with the
OpenMP runtime's default wait policy (its worker threads spin while waiting at each barrier); two threads with
``OMP_WAIT_POLICY=PASSIVE`` (they sleep). "loaded" runs the same measurement beside one competing single-threaded
process (a float32 matmul loop on one thread), as when someone's job shares the machine. Every setting computes the
same numbers for a given thread count (the wait policy changes no arithmetic). The median over ``--repeats`` is
reported, with the machine's load average when the measurement started. Result file:
``benchmarks/results/thread_contention_cpu.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from lib.paths import ROOT
from lib.runs import env_info, write_json

SETTINGS = {  # name -> environment of the measured process
    "1 thread": {"AVAE_BENCH_THREADS": "1"},
    "2 threads, OpenMP default wait policy": {"AVAE_BENCH_THREADS": "2", "OMP_WAIT_POLICY": ""},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"AVAE_BENCH_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}

_MEASURE = r"""
import os, time, torch
from lib import registry
torch.set_num_threads(int(os.environ["AVAE_BENCH_THREADS"]))
torch.manual_seed(0)
model = registry.build("vae", x_shape=(1, 28, 28), z_dim=32, hidden=(512, 512))
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = (torch.rand(100, 1, 28, 28) > 0.5).float()
def step():
    loss = model.loss("model", x)["loss"]
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(20):
    step()
n = int(os.environ["AVAE_BENCH_STEPS"])
t = time.perf_counter()
for _ in range(n):
    step()
print(1000 * (time.perf_counter() - t) / n)
"""

_COMPETITOR = r"""
import torch
torch.set_num_threads(1)
a = torch.randn(256, 256)
while True:
    a = torch.tanh(a @ a) * 0.5
"""


def measure(setting: dict, steps: int) -> float:
    """ms per training step of one fresh subprocess with ``setting``'s environment (an empty value unsets it)."""
    env = {**os.environ, "AVAE_BENCH_STEPS": str(steps), "PYTHONPATH": str(ROOT)}
    for k, v in setting.items():
        if v:
            env[k] = v
        else:
            env.pop(k, None)
    out = subprocess.run([sys.executable, "-c", _MEASURE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    for load in ("alone", "loaded"):
        competitor = None
        if load == "loaded":
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            competitor = subprocess.Popen([sys.executable, "-c", _COMPETITOR], env=env)
            time.sleep(2)
        try:
            for name, setting in SETTINGS.items():
                load_avg = os.getloadavg()[0]
                times = [measure(setting, args.steps) for _ in range(args.repeats)]
                rows.append({"setting": name, "load": load, "ms_per_step": statistics.median(times), "all_ms": times,
                             "loadavg_1min_at_start": round(load_avg, 2)})
                print(f"{load:>6} | {name:<40} | {rows[-1]['ms_per_step']:8.1f} ms/step  (runs {times}, "
                      f"load average {load_avg:.1f})", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    out = {"benchmark": "thread_contention", "env": env_info("cpu"), "cpu_count": os.cpu_count(),
           "steps": args.steps, "repeats": args.repeats, "rows": rows,
           "command": "python -m benchmarks.thread_contention " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = ROOT / "benchmarks" / "results" / "thread_contention_cpu.json"
    write_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helper process for tests/test_reliability.py (not a test module: pytest collects ``test_*.py`` only).

Two modes, both printing one flushed line per event so that the parent can SIGKILL it at a known point
(``--pause-at LINE``: after printing exactly LINE the process sleeps, waiting to be killed there):

``train`` (default): train a tiny AVB on fixed random [0, 1] data with :func:`lib.train.fit`, checkpointing every
iteration into ``--run-dir`` (and resuming from its ``ckpt.pt``, like any run). Lines: ``next <n>`` before the n-th
batch of this process is drawn (AVB: batches 2i - 1 and 2i feed the adversary and primal steps of the i-th iteration
run here), ``saving <step>`` before a checkpoint is written (metrics row <step> is then already in metrics.jsonl,
ckpt.pt still holds step - 1), ``saved <step>`` after it, ``done`` at the end. ``--sleep``: seconds to pause after
each ``next`` / ``saving`` line.

``write``: forever, alternately write a checkpoint of a ~8 MB model whose every parameter equals the version number v
(``save_checkpoint(..., step=v)``) to ``<run-dir>/ckpt.pt`` and ``{"version": v, "payload": [v] * 200000}`` to
``<run-dir>/metrics.json`` (:func:`lib.runs.write_json`), v = --start, --start + 1, ...; ``--slow-write S`` makes every
file write take S seconds (a slow disk), so that a kill at a random time usually lands inside a write.
Lines: ``ready``, then ``ckpt <v>`` / ``json <v>`` after each completed write.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CI", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

import lib.train as train  # noqa: E402
from lib import registry  # noqa: E402
from lib.data import BatchSampler  # noqa: E402
from lib.runs import seed_everything, write_json  # noqa: E402


PAUSE_AT: str | None = None


def say(msg: str) -> None:
    print(msg, flush=True)
    if msg == PAUSE_AT:  # wait here to be killed
        time.sleep(600)


def tiny_avb():
    return registry.build("avb", x_shape=(1, 8, 8), z_dim=2, hidden=(16,), noise_dim=4, adversary_hidden=(16,))


class SlowSampler:
    """BatchSampler (dynamic binarisation: uses the global RNG) that reports and pauses before every batch."""

    def __init__(self, inner: BatchSampler, sleep: float):
        self.inner, self.sleep, self.n = inner, sleep, 0

    def next(self):
        self.n += 1
        say(f"next {self.n}")
        time.sleep(self.sleep)
        return self.inner.next()

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def run_train(args) -> None:
    seed_everything(args.seed)
    data = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1234))  # same data in every process
    model = tiny_avb()
    sampler = SlowSampler(BatchSampler(data, 16), args.sleep)
    original = train.atomic_write_bytes

    def reporting_write(path, data):
        if Path(path).name != "ckpt.pt":  # e.g. fit rewriting metrics.jsonl on resume
            return original(path, data)
        step = torch.load(io.BytesIO(data), weights_only=False)["step"]
        say(f"saving {step}")
        time.sleep(args.sleep)
        original(path, data)
        say(f"saved {step}")

    # fit writes checkpoints through lib.train's atomic_write_bytes (looked up at call time)
    train.atomic_write_bytes = reporting_write
    train.fit(model, sampler, steps=args.steps, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=args.run_dir,
              log_every=1, ckpt_every=1, progress=False)
    say("done")


class SlowFile:
    """A file whose ``write`` lands on disk in 8 flushed chunks, pausing between them."""

    def __init__(self, fh, seconds: float):
        self._fh, self._pause = fh, seconds / 8

    def write(self, data):
        step = max(1, -(-len(data) // 8))
        for i in range(0, len(data), step):
            self._fh.write(data[i:i + step])
            self._fh.flush()
            time.sleep(self._pause)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


def slow_disk(seconds: float) -> None:
    """Make every file opened for writing (``open``, ``os.fdopen``) slow, whichever way the library writes."""
    import builtins

    def wrap(opener):
        def opened(file, mode="r", *a, **kw):
            fh = opener(file, mode, *a, **kw)
            return SlowFile(fh, seconds) if any(c in mode for c in "wax") else fh
        return opened

    builtins.open, os.fdopen = wrap(builtins.open), wrap(os.fdopen)


def run_write(args) -> None:
    model = registry.build("vae", x_shape=(1000,), z_dim=4, hidden=(1000,))  # ~2M parameters: an 8 MB checkpoint
    run_dir = Path(args.run_dir)
    say("ready")
    v = args.start
    while True:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(v))
        train.save_checkpoint(run_dir / "ckpt.pt", model, {}, step=v)  # no Adam: its first use imports torch._dynamo (1.5 s)
        say(f"ckpt {v}")
        write_json(run_dir / "metrics.json", {"version": v, "payload": [v] * 200_000})
        say(f"json {v}")
        v += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("train", "write"), default="train")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--pause-at", help="after printing this exact line, sleep (to be SIGKILLed there)")
    ap.add_argument("--slow-write", type=float, default=0.0,
                    help="write mode: every file write takes this many seconds (8 flushed chunks): a slow disk")
    args = ap.parse_args()
    global PAUSE_AT
    PAUSE_AT = args.pause_at
    if args.slow_write:
        slow_disk(args.slow_write)
    (run_train if args.mode == "train" else run_write)(args)


if __name__ == "__main__":
    main()

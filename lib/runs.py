"""Run bookkeeping: profile and device resolution, seeding, run folders, atomic files, environment record.

A run lives in ``runs/<experiment>/<stamp>_s<seed>/`` and holds ``config.json``, ``env.json``,
``metrics.jsonl``, ``final_metrics.json``, ``ckpt.pt`` and ``cache/`` (evaluations: :meth:`lib.notebook.Notebook.cached`).
"""
from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .paths import ROOT, runs_dir

PROFILES = ("auto", "quick", "standard", "full")


def resolve_profile(profile: str) -> str:
    """``"auto"`` -> ``"full"`` on a GPU, ``"quick"`` without one or when ``CI`` is set.

    raises ValueError for a name other than auto / quick / full.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES}")
    if profile != "auto":
        return profile
    return "full" if torch.cuda.is_available() and not os.environ.get("CI") else "quick"


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``. raises RuntimeError if CUDA (or a CUDA index, or MPS) is
    asked for but absent here, ValueError for a string that names no device.

    On the CPU, the environment variable ``AVAE_NUM_THREADS`` (if set) fixes torch's thread count:
    on small VMs shared with other processes, one thread can be several times faster than two.
    """
    if os.environ.get("AVAE_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["AVAE_NUM_THREADS"]))
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available here; use DEVICE='cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {device!r} was requested but this machine has {torch.cuda.device_count()} CUDA "
                           "device(s); use DEVICE='cuda' or 'auto'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {device!r} was requested but MPS is not available here; use DEVICE='cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and CUDA) with one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states, for checkpoints."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the Python, NumPy, torch CPU and (when CUDA is available and the state has them) CUDA generators from a
    dict of :func:`rng_state`'s form {"python", "numpy", "torch", "cuda"?}, e.g. a checkpoint's; a CUDA state saved
    on a GPU machine is ignored on a CPU-only one. raises KeyError if "python", "numpy" or "torch" is missing."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


RUN_STAMP = "%Y%m%d-%H%M%S"  #: a run folder's name is <stamp>_s<seed>, the stamp in local time (time.strftime)


def run_folder_time(name: str) -> float | None:
    """When a run folder named ``<stamp>_s<seed>`` (:func:`new_run_dir`) was created: seconds since the epoch, from
    its stamp (local time, to the second). None for a name without such a stamp (a folder given as ``RUN_DIR``)."""
    stamp = name.rsplit("_s", 1)[0]
    if len(stamp) != 15 or stamp[8] != "-" or not (stamp[:8] + stamp[9:]).isdigit():
        return None
    try:
        return time.mktime(time.strptime(stamp, RUN_STAMP))
    except ValueError:  # e.g. month 13
        return None


def new_run_dir(experiment: str, seed: int, run_dir: str | os.PathLike | None = None) -> Path:
    """The run folder: ``run_dir`` if given (created), else a new ``runs/<experiment>/<stamp>_s<seed>/``. Two runs of
    one experiment and seed started within the same second get different stamps (the second waits for the next
    second): a run never writes into another run's folder."""
    if run_dir:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    while True:
        path = runs_dir() / experiment / f"{time.strftime(RUN_STAMP)}_s{seed}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            time.sleep(0.05)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and figures are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def json_normalized(obj):
    """``obj`` as :func:`write_json` stores it and ``json.load`` reads it back (tuples as lists, tensors as lists,
    NumPy scalars as numbers), to compare a value with a stored JSON file."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, (Path, torch.device)):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def env_info(device: torch.device | str | None = None) -> dict:
    """Versions, device and git commit, for ``env.json`` and the results table."""
    dev = torch.device(device) if device is not None else None
    info = {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
        "device": str(dev) if dev else None, "git_commit": git_commit(),
    }
    if dev is not None and dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
    else:
        info["device_name"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return info


def start_run(experiment: str, *, profile: str, seed: int, device: torch.device, config: dict,
              run_dir: str | os.PathLike | None = None) -> Path:
    """Create the run folder and write ``config.json`` and ``env.json``. returns the folder."""
    path = new_run_dir(experiment, seed, run_dir)
    write_json(path / "config.json", {"experiment": experiment, "profile": profile, "seed": seed, **config})
    write_json(path / "env.json", env_info(device))
    return path


class ExperimentSkipped(Exception):
    """Raised by :func:`skip_run`: the experiment cannot run here (e.g. its data are absent); not a failure.

    In JupyterLab it prints as one line and stops "Run all"; ``paper_reproductions.run`` counts it as a clean skip.
    """

    def _render_traceback_(self):  # IPython: show the one-line reason, not a traceback
        return [f"{type(self).__name__}: {self}"]


def skip_run(run_dir: Path, experiment: str, *, profile: str, seed: int, device, reason: str) -> None:
    """Record a skip (``final_metrics.json`` with ``skipped``, listed in RESULTS.md), print it, and stop the notebook.

    raises ExperimentSkipped(reason), always.
    """
    finish_run(run_dir, experiment, profile=profile, seed=seed, device=device, metrics={}, skipped=reason)
    print(f"SKIPPED: {reason}")
    raise ExperimentSkipped(reason)


def finish_run(run_dir: Path, experiment: str, *, profile: str, seed: int, device, metrics: dict,
               skipped: str | None = None) -> dict:
    """Write ``final_metrics.json``: ``metrics`` maps a key to ``{"value", "sem"?, "implementation", ...}``.

    skipped: one line saying why the experiment could not run here (e.g. its data are absent); RESULTS.md
    lists it, so a skip is never silent.
    """
    out = {"experiment": experiment, "profile": profile, "seed": seed, "device": env_info(device)["device_name"],
           "metrics": metrics}
    if skipped:
        out["skipped"] = skipped
    write_json(Path(run_dir) / "final_metrics.json", out)
    return out

"""Reliability: resume is bit-exact under SIGKILL, results files are written atomically, and a seed fixes a run.

The killed processes run tests/_train_child.py (real processes, real SIGKILL: nothing in them gets a chance to
clean up). Each child pays torch's import and, when it trains, Adam's first use (~3 s in all on a quiet machine), so
this file keeps to six of them, the uninterrupted reference running alongside the first killed one.
"""
from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_train_child.py")
STEPS = 6
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


class Child:
    """A tests/_train_child.py process whose stdout is read line by line without Python-level buffering
    (so that ``wait_for`` sees a line as soon as it is printed)."""

    def __init__(self, tmp: Path, *args):
        env = {**os.environ, "CI": "1", "AVAE_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.err_path = tmp / f"stderr_{time.monotonic_ns()}.txt"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], stdout=subprocess.PIPE,
                                         stderr=err, bufsize=0, cwd=ROOT, env=env)
        self.buf, self.lines = b"", []

    def wait_for(self, line: str, timeout: float = 120) -> list[str]:
        """Read lines until ``line`` has been printed; returns the lines read so far."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while line not in self.lines:
            if b"\n" in self.buf:
                head, self.buf = self.buf.split(b"\n", 1)
                self.lines.append(head.decode())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError(f"child did not print {line!r} within {timeout} s; got {self.lines[-5:]}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    raise AssertionError(f"child exited with {self.proc.returncode} before printing {line!r}; "
                                         f"last lines {self.lines[-5:]}; stderr:\n{self.err_path.read_text()[-3000:]}")
                self.buf += chunk
        return self.lines

    def kill(self) -> list[str]:
        """SIGKILL; returns every line the child printed (read to the end of the pipe)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            self.buf += chunk
        self.proc.stdout.close()
        self.lines += [line.decode() for line in self.buf.split(b"\n") if line]
        self.buf = b""
        return self.lines

    def finish(self, timeout: float = 120) -> None:
        self.wait_for("done", timeout)
        assert self.proc.wait(timeout) == 0, self.err_path.read_text()[-3000:]
        self.proc.stdout.close()


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "ckpt.pt", weights_only=False)


def _assert_same(a, b, where="ckpt"):
    """Recursive bit-for-bit equality of checkpoint contents (tensors, numpy arrays, containers, scalars)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


#: where the run is killed, in order, and the checkpoint step each kill must leave on disk. AVB draws two batches per
#: iteration (adversary, primal), so "next 8" is the primal batch of iteration 4: its adversary step has changed the
#: weights in memory, nothing of iteration 4 is on disk. The resumed process restarts at iteration 4 and numbers its
#: batches from 1 again; at "saving 5" metrics row 5 is logged but checkpoint 5 is not written.
KILLS = [("next 8", 3), ("saving 5", 4)]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """An uninterrupted run, and a run SIGKILLed at each point of KILLS in turn, resumed each time, then finished."""
    tmp = tmp_path_factory.mktemp("resume")
    ref = Child(tmp, "--run-dir", tmp / "ref", "--steps", STEPS)  # runs alongside the first killed process
    at_kill = []
    for line, _ in KILLS:
        child = Child(tmp, "--run-dir", tmp / "killed", "--steps", STEPS, "--pause-at", line)
        child.wait_for(line)
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL
        at_kill.append({"ckpt_step": _ckpt(tmp / "killed")["step"], "rows": _rows(tmp / "killed")})
    Child(tmp, "--run-dir", tmp / "killed", "--steps", STEPS).finish()
    ref.finish()
    return tmp, at_kill


def test_kills_landed_where_intended(killed_and_resumed):
    _, at_kill = killed_and_resumed
    assert [k["ckpt_step"] for k in at_kill] == [step for _, step in KILLS]
    # the second kill came after row 5 was logged and before checkpoint 5: the case where resuming must drop a row
    assert [r["step"] for r in at_kill[1]["rows"]] == [1, 2, 3, 4, 5]


def test_resume_after_sigkill_is_bit_exact(killed_and_resumed):
    tmp, _ = killed_and_resumed
    ref, got = _ckpt(tmp / "ref"), _ckpt(tmp / "killed")
    assert got["step"] == ref["step"] == STEPS
    for k, v in ref["model"].items():
        assert torch.equal(v, got["model"][k]), f"parameter {k} differs from the uninterrupted run"
    _assert_same(ref, got)  # and every optimizer moment, the sampler and all RNG states


def test_resume_after_sigkill_logs_each_step_once(killed_and_resumed):
    """metrics.jsonl of the twice-killed run equals the uninterrupted run's: no duplicated or missing step, same values."""
    tmp, _ = killed_and_resumed
    ref, got = _rows(tmp / "ref"), _rows(tmp / "killed")
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert got == ref


# ------------------------------------------------------------------------------------------------ atomic writes
_TMP = re.compile(r"^\.(ckpt\.pt|metrics\.json)\..+\.tmp$")


def _check_files(d: Path, done: dict[str, int | None], lines: list[str], start: int) -> dict[str, int | None]:
    """After a kill: each target is absent (nothing written yet) or a complete version that was written (the last
    one reported, or the one being written when the kill came). returns the versions found."""
    found = {}
    for kind, name in (("ckpt", "ckpt.pt"), ("json", "metrics.json")):
        reported = [int(line.split()[1]) for line in lines if line.startswith(kind + " ")]
        last = reported[-1] if reported else done[kind]
        path = d / name
        if not path.exists():
            assert last is None, f"{name} vanished after version {last} had been written"
            found[kind] = None
            continue
        if kind == "ckpt":
            ckpt = torch.load(path, weights_only=False)  # raises on a partial file
            v = ckpt["step"]
            assert all(torch.equal(t, torch.full_like(t, float(v))) for t in ckpt["model"].values()), \
                f"{name} mixes versions"
        else:
            obj = json.loads(path.read_text())
            v = obj["version"]
            assert obj["payload"] == [v] * 200_000, f"{name} mixes versions"
        in_flight = last + 1 if reported else None
        assert v == last or v == in_flight or (not reported and v == start), (name, v, last)
        found[kind] = v
    return found


def test_sigkill_never_leaves_a_partial_checkpoint_or_json(tmp_path):
    """Kill a process that rewrites a checkpoint (~8 MB) and a JSON file (~1.4 MB) in a loop on a slow disk, at
    seeded random times: every time, both files are absent or complete versions; the only other files are
    ``.<name>.*.tmp`` leftovers of the write that was interrupted (they cannot be told from a finished file by
    name, and no loader reads them: see test_loaders_ignore_leftover_temporary_files)."""
    rng = random.Random(0)
    d = tmp_path / "w"
    d.mkdir()
    done: dict[str, int | None] = {"ckpt": None, "json": None}
    leftovers: list[int] = []  # temporary files each kill left behind (1 or 2: it came inside a write)
    seen: set[str] = set()
    for round_ in range(4):
        start = 1000 * (round_ + 1)  # every process writes versions of its own
        child = Child(tmp_path, "--mode", "write", "--run-dir", d, "--start", start, "--slow-write", 0.08)
        child.wait_for("ready")
        time.sleep(rng.uniform(0.05, 0.6))
        done = _check_files(d, done, child.kill(), start)
        names = {p.name for p in d.iterdir()}
        stray = {n for n in names - {"ckpt.pt", "metrics.json"} if not _TMP.match(n)}
        assert not stray, f"unexpected files after a kill: {stray}"
        tmps = {n for n in names if _TMP.match(n)}
        leftovers.append(len(tmps - seen))
        seen |= tmps
    print(f"temporary files left by each kill: {leftovers}")


def test_loaders_ignore_leftover_temporary_files(tmp_path, monkeypatch):
    """A SIGKILL inside atomic_write_bytes leaves ``.<name>.<random>.tmp``: resuming and RESULTS.md never read it."""
    from lib import registry
    from lib.toys import FourPointSampler
    from lib.train import fit
    from paper_reproductions import report

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".ckpt.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    m = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(8,))
    hist = fit(m, FourPointSampler(8), steps=2, lr={"model": 1e-3}, run_dir=run_dir, log_every=1, progress=False)
    assert [r["step"] for r in hist] == [1, 2]  # started afresh: the leftover was not taken for a checkpoint

    monkeypatch.setattr(report, "DATA_DIR", tmp_path / "results")
    d = tmp_path / "runs" / "11_avb_toy_4points" / "20260101-000000_s0"
    d.mkdir(parents=True)
    (d / ".final_metrics.json.xyz.tmp").write_text('{"profile": "quick", "metr')
    assert report.import_runs(tmp_path / "runs") == []  # nothing imported, no crash
    leftover = tmp_path / "results" / "11_avb_toy_4points" / "quick" / ".seed0.json.xyz.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('{"experiment": "11_avb_toy_4points", "metr')
    assert "| AVB, 4-point toy: log p(x)" not in report.build_report()  # no row, no crash


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    """An exception inside atomic_write_bytes (disk full, ...) leaves the previous content and cleans up."""
    import lib.runs as runs

    path = tmp_path / "final_metrics.json"
    runs.write_json(path, {"v": 1})

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        runs.write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["final_metrics.json"]


def test_results_md_and_figures_are_written_atomically(tmp_path, monkeypatch):
    """RESULTS.md (paper_reproductions.report, called by .run) and figures (lib.plotting.savefig) go through atomic_write_bytes and
    nothing else writes the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import lib.plotting as plotting
    from paper_reproductions import report, run

    calls = []

    def record(path, data):
        calls.append((Path(path), data))

    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AVAE_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setattr(report, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(report, "DATA_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "atomic_write_bytes", record)
    assert run.main(["--results-only", "--profile", "quick"]) == 0
    assert [c[0] for c in calls] == [tmp_path / "RESULTS.md"] and calls[0][1].startswith(b"# Results")
    assert not (tmp_path / "RESULTS.md").exists()  # written only through atomic_write_bytes

    calls.clear()
    monkeypatch.setattr(plotting, "atomic_write_bytes", record)
    fig = plt.figure(figsize=(1, 1))
    try:
        paths = plotting.savefig(fig, "probe", formats=("png", "pdf"))
    finally:
        plt.close(fig)
    assert [c[0] for c in calls] == paths == [tmp_path / "figures" / "quick" / "probe.png", tmp_path / "figures" / "quick" / "probe.pdf"]
    assert calls[0][1].startswith(b"\x89PNG") and calls[1][1].startswith(b"%PDF")
    assert not any(p.is_file() for p in (tmp_path / "figures").rglob("*"))


# ------------------------------------------------------------------------------------------------ determinism
def _short_run(family: str, name: str, seed: int, run_dir: Path) -> bytes:
    """seed_everything, a tiny model, 3 iterations of fit, the final logged losses through finish_run: the bytes of
    final_metrics.json."""
    from lib import registry
    from lib.data import BatchSampler
    from lib.runs import finish_run, seed_everything
    from lib.train import fit

    seed_everything(seed)
    if family == "nets":
        m = registry.build(name, x_shape=(1, 8, 8), z_dim=2, hidden=(16,), noise_dim=4, adversary_hidden=(16,),
                           n_flows=2, n_basis=2, decoder_noise_dim=2)
        sampler = BatchSampler(torch.rand(64, 1, 8, 8), 16)  # dynamic binarisation: the global RNG again
    else:
        m = registry.build(name, x_shape=(1, 28, 28), z_dim=4, width=4, noise_dim=2)
        sampler = BatchSampler(torch.rand(64, 1, 28, 28), 16, dynamic_binarization=False)
    last = fit(m, sampler, steps=3, lr={p: 1e-3 for p in m.players}, log_every=1, progress=False)[-1]
    metrics = {k: {"value": v, "implementation": "final logged loss term, 3 iterations"} for k, v in last.items()
               if k != "step"}
    finish_run(run_dir, f"determinism_{name}", profile="quick", seed=seed, device="cpu", metrics=metrics)
    return (run_dir / "final_metrics.json").read_bytes()


def _all_methods():
    from lib import registry

    return [(registry.entry(n).family, n) for n in registry.names()]


@pytest.mark.parametrize("family,name", _all_methods(), ids=[f"{f}-{n}" for f, n in _all_methods()])
def test_same_seed_gives_byte_identical_final_metrics(tmp_path, family, name):
    a = _short_run(family, name, 0, tmp_path / "a")
    torch.manual_seed(12345)  # whatever the RNGs held before, seed_everything decides
    b = _short_run(family, name, 0, tmp_path / "b")
    assert a == b
    assert _short_run(family, name, 1, tmp_path / "c") != a.replace(b'"seed": 0', b'"seed": 1')  # the seed matters


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """new_run_dir: three runs of one experiment and seed started back to back (well within a second) get three
    folders, each named <stamp>_s<seed>, none reused (a second run would otherwise overwrite the first's files)."""
    from lib.runs import new_run_dir

    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path))
    folders = [new_run_dir("80_tiny", 0) for _ in range(3)]
    assert len(set(folders)) == 3 and all(re.fullmatch(r"\d{8}-\d{6}_s0", f.name) for f in folders)
    assert new_run_dir("80_tiny", 0, tmp_path / "given") == tmp_path / "given"  # a given folder is used as it is

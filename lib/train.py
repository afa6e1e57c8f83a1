"""One training loop for several players (VAE: one; AVB: adversary + primal; later papers: more).

Each iteration steps the players in ``method.schedule`` order, each ``k`` times, each with a fresh
batch and its own Adam optimizer. Gradient hygiene: while a player steps, every other player's
parameters have ``requires_grad=False``, so its backward pass neither computes nor leaves gradients
there, and its optimizer holds only its own parameters -- an adversary step never changes the
encoder or decoder, and a primal step never changes the adversary (tested).

Reliability (tested, see tests/test_train.py and tests/test_reliability.py):

* checkpoints (``ckpt.pt``) hold state dicts only -- every network, every optimizer, the step, the batch
  sampler and all RNG states -- and are written atomically; ``fit`` resumes from one bit-for-bit, and
  drops the ``metrics.jsonl`` rows logged after it, so a run killed at any point and resumed equals an
  uninterrupted one;
* divergence guard: a non-finite loss term or gradient is caught at the step where it occurs, *before* the
  optimizer applies it; ``fit`` raises :class:`DivergenceError` naming the iteration, the player and the
  offending terms (or parameters), and the last checkpoint on disk is the last good one. With
  ``on_divergence="rollback"`` it instead restores the last good state and retries with the adversaries'
  learning rates multiplied by ``rollback_lr_factor`` (at most ``max_rollbacks`` times), logging the event.

Speed: the data stay on the device (``lib.data.BatchSampler``); ``compile`` (``torch.compile`` of the
loss, ``"reduce-overhead"`` = CUDA-graph capture on a GPU) and ``autocast_bf16`` are flags, off by
default and recorded in ``run_dir/fit_config.json``; the wall time of the iterations a call ran (a resumed run: since
the resume) goes to ``run_dir/fit_time.json``, which ``paper_reproductions.run`` sums into RESULTS.md's compute table.
Several processes (``torchrun``): each player's gradients are averaged over the ranks before its step
(:mod:`lib.distributed`); rank 0 alone writes.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed as ddp
from .method import Method
from .runs import atomic_write_bytes, rng_state, set_rng_state, write_json

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


class DivergenceError(FloatingPointError):
    """A loss term or a gradient became non-finite. Attributes: ``step``, ``player``, ``terms`` (name -> value)."""

    def __init__(self, message: str, step: int, player: str, terms: dict[str, float]):
        super().__init__(message)
        self.step, self.player, self.terms = step, player, terms


def set_trainable(method: Method, player: str | None) -> None:
    """Let only ``player``'s parameters require gradients (``None``: all of them)."""
    for p in method.parameters():
        p.requires_grad_(player is None)
    if player is not None:
        for p in method.player_parameters(player):
            p.requires_grad_(True)


def make_optimizers(method: Method, lr: dict[str, float], betas=(0.5, 0.999),
                    fused: bool | None = None) -> dict[str, torch.optim.Adam]:
    """One Adam per player. lr: player -> learning rate. fused: True for torch's fused Adam kernel (one call per
    player step; the same update as the reference loop up to float rounding, tested); False for torch's default
    implementation (a loop over tensors on the CPU, ``foreach`` on CUDA); None: fused where every parameter is a
    float tensor on a CPU or CUDA device (``benchmarks.fast_path_check`` times both).
    returns: player -> Adam. raises ValueError if a player's lr is missing or unknown."""
    missing, unknown = set(method.players) - set(lr), set(lr) - set(method.players)
    if missing or unknown:
        raise ValueError(f"lr must name exactly the players {sorted(method.players)}; "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in method.parameters())
    return {p: torch.optim.Adam(method.player_parameters(p), lr=lr[p], betas=tuple(betas), fused=fused or None)
            for p in method.players}


def _checkpoint_bytes(method: Method, optimizers: dict, step: int, sampler=None) -> bytes:
    rngs = ddp.gather_objects(rng_state())
    buf = io.BytesIO()
    torch.save({
        "step": step, "method_config": method.config(), "model": method.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "sampler": sampler.state_dict() if sampler is not None else None, "rng": rngs[0],
        **({"rng_ranks": rngs} if len(rngs) > 1 else {}),
    }, buf)
    return buf.getvalue()


def save_checkpoint(path: str | os.PathLike, method: Method, optimizers: dict, step: int, sampler=None) -> None:
    """Atomically write a checkpoint of state dicts (no pickled modules). Under torchrun every rank must call it (each
    rank's RNG state is gathered into the file); rank 0 alone writes."""
    data = _checkpoint_bytes(method, optimizers, step, sampler)
    if ddp.rank_and_world()[0] == 0:
        atomic_write_bytes(path, data)


def load_checkpoint(path: str | os.PathLike | bytes, method: Method, optimizers: dict | None = None, sampler=None,
                    restore_rng: bool = True) -> int:
    """Load a checkpoint written by :func:`save_checkpoint` into ``method`` (and optimizers, sampler, RNGs).

    path: the file, or its bytes. returns: the step it was saved at.
    raises ValueError if it belongs to another method or architecture (names the differences), or if the file is
    not a checkpoint at all (truncated or foreign).
    """
    src = io.BytesIO(path) if isinstance(path, bytes) else path
    where = "in-memory checkpoint" if isinstance(path, bytes) else f"checkpoint {path}"
    try:
        ckpt = torch.load(src, map_location=next(method.parameters()).device, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{where} is unreadable ({err}); delete it to start the run afresh") from err
    if not isinstance(ckpt, dict) or "method_config" not in ckpt:
        raise ValueError(f"{where} is not a checkpoint of lib.train.save_checkpoint")
    mine, theirs = method.config(), ckpt["method_config"]
    if mine["method"] != theirs["method"]:
        raise ValueError(f"{where} is for method {theirs['method']}, not {mine['method']}")
    if mine["shapes"] != theirs["shapes"]:
        diff = sorted(k for k in set(mine["shapes"]) | set(theirs["shapes"]) if mine["shapes"].get(k) != theirs["shapes"].get(k))
        raise ValueError(f"{where} has another architecture; differing parameters: {diff[:5]}")
    mine_s, theirs_s = mine["settings"], theirs.get("settings", {})  # checkpoints from before settings were stored
    differ = {k: (theirs_s[k], mine_s[k]) for k in sorted(set(mine_s) & set(theirs_s)) if mine_s[k] != theirs_s[k]}
    if differ:
        raise ValueError(f"{where} is for another {mine['method']} variant; differing settings (checkpoint, this "
                         f"model): " + ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in differ.items()))
    method.load_state_dict(ckpt["model"])
    if optimizers is not None:
        for k, o in optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
    if sampler is not None and ckpt["sampler"] is not None:
        sampler.load_state_dict(ckpt["sampler"])
    if restore_rng:
        rank, world = ddp.rank_and_world()
        ranks = ckpt.get("rng_ranks")
        set_rng_state(ranks[rank] if ranks is not None and len(ranks) == world else ckpt["rng"])
    return int(ckpt["step"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the rows of ``metrics.jsonl`` logged at or before ``step`` (and drop a half-written last line)."""
    if not path.exists():
        return
    keep = [json.dumps(row) + "\n" for row in _metrics_rows(path) if row.get("step", 0) <= step]
    atomic_write_bytes(path, "".join(keep).encode())


def _metrics_rows(path: Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` file, in order, skipping a line that is not JSON (a half-written last one)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _divergence(player: str, it: int, out: dict, grads: dict[str, torch.Tensor]) -> DivergenceError:
    terms = {n: float(v.detach()) for n, v in out.items() if v.dim() == 0}
    bad = [n for n, v in terms.items() if not math.isfinite(v)]
    if bad:
        what = f"non-finite loss term(s) {bad}"
    else:
        params = [n for n, g in grads.items() if not torch.isfinite(g).all()]
        what = f"finite loss terms but non-finite gradients in {params[:5]}{' ...' if len(params) > 5 else ''}"
    return DivergenceError(f"non-finite values at iteration {it}, player {player!r}: {what}; terms {terms}",
                           it, player, terms)


class _RunFolder:
    """The files ``fit`` keeps in run_dir (None: none). Rank 0 alone writes; every rank reads ``ckpt.pt`` to resume."""

    def __init__(self, run_dir: str | os.PathLike | None, writer: bool):
        self.path = Path(run_dir) if run_dir is not None else None
        self.ckpt = self.path / "ckpt.pt" if self.path is not None else None
        self.writes = self.path is not None and writer
        if self.writes:
            self.path.mkdir(parents=True, exist_ok=True)
            for tmp in self.path.glob(".*.tmp"):  # temporary files of atomic writes that a killed run left behind
                tmp.unlink(missing_ok=True)

    def start(self, method: Method, optimizers: dict, sampler, resume: bool) -> int:
        """The iteration to start at: that of ``ckpt.pt``, loaded, when resuming from one, else 0. Drops the metrics
        rows logged after it."""
        start = 0
        if self.ckpt is not None and resume and self.ckpt.exists():
            start = load_checkpoint(self.ckpt, method, optimizers, sampler)
        self.truncate_metrics(start)
        return start

    def logged_rows(self, step: int) -> list[dict]:
        """The rows of ``metrics.jsonl`` logged at or before ``step``, without events (rollbacks): the history a
        resumed ``fit`` continues (``[]`` when there is no file)."""
        path = self.path / "metrics.jsonl" if self.path is not None else None
        if path is None or step == 0 or not path.exists():
            return []
        return [row for row in _metrics_rows(path) if "event" not in row and row.get("step", 0) <= step]

    def truncate_metrics(self, step: int) -> None:
        if self.writes:
            _truncate_metrics(self.path / "metrics.jsonl", step)

    def append_metrics(self, row: dict) -> None:
        if self.writes:
            with open(self.path / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def write_json(self, name: str, obj: dict) -> None:
        if self.writes:
            write_json(self.path / name, obj)

    def write_checkpoint(self, data: bytes) -> None:
        if self.writes:
            atomic_write_bytes(self.ckpt, data)


class _PlayerStep:
    """One optimizer step of one player on a fresh batch, with the divergence guard: a non-finite loss term or
    gradient raises :class:`DivergenceError` before the optimizer applies it. Under torchrun the player's gradients
    are averaged over the ranks first. Only the stepping player's parameters require gradients."""

    def __init__(self, method: Method, optimizers: dict, sampler, compile: str | None, autocast_bf16: bool,
                 distributed: bool):
        self.method, self.optimizers, self.sampler, self.distributed = method, optimizers, sampler, distributed
        device = next(method.parameters()).device
        self.loss_fn = method.loss if compile is None else \
            torch.compile(method.loss, mode=None if compile == "default" else compile)
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast_bf16 \
            else contextlib.nullcontext
        self.names = {id(p): n for n, p in method.named_parameters()}
        self.params = {pl: method.player_parameters(pl) for pl in method.players}
        self.trainable = None

    def __call__(self, player: str, it: int) -> dict[str, torch.Tensor]:
        """returns the loss terms of the step (``"loss"`` and the logged scalars). raises DivergenceError."""
        if player != self.trainable:  # one-player methods set it once
            set_trainable(self.method, player)
            self.trainable = player
        opt, ps = self.optimizers[player], self.params[player]
        with self.autocast():
            out = self.loss_fn(player, self.sampler.next())
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if self.distributed:  # every rank averages the same list: a missing gradient counts as zeros
            for p in ps:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            ddp.allreduce_mean_([p.grad for p in ps])
        grads = [p.grad for p in ps if p.grad is not None]
        # the sum of every gradient entry: NaN and inf propagate, and one reduction per tensor is the
        # cheapest check (a finite sum above 3e38 would also stop the run: a divergence in all but name)
        finite = torch.isfinite(out["loss"].detach() + torch.stack([g.sum() for g in grads]).sum()) \
            if grads else torch.isfinite(out["loss"].detach())
        if not finite:  # one device sync per player step
            raise _divergence(player, it, out, {self.names[id(p)]: p.grad for p in ps if p.grad is not None})
        opt.step()
        return out


class _Meter:
    """Sums of the logged loss terms since the last row; ``row`` turns them into means (under torchrun: over the
    ranks too) and starts afresh."""

    def __init__(self, distributed: bool, device: torch.device):
        self.distributed, self.device = distributed, device
        self.sums: dict[str, torch.Tensor] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, player: str, out: dict[str, torch.Tensor]) -> None:
        for name, v in out.items():
            if name != "loss":
                self.sums[f"{player}/{name}"] = self.sums[f"{player}/{name}"] + v.detach()
                self.counts[f"{player}/{name}"] += 1

    def row(self, it: int) -> dict:
        """``{"step": it, "<player>/<term>": mean since the last row, ...}``."""
        if self.distributed:  # the mean over the ranks
            keys = sorted(self.sums)
            means = torch.stack([torch.as_tensor(self.sums[n], device=self.device).double() / self.counts[n]
                                 for n in keys])
            ddp.allreduce_mean_([means])
            row = {"step": it, **dict(zip(keys, means.tolist()))}
        else:
            row = {"step": it, **{n: float(s) / self.counts[n] for n, s in self.sums.items()}}
        self.clear()
        return row

    def clear(self) -> None:
        self.sums.clear(), self.counts.clear()


class _Rollback:
    """``on_divergence="rollback"``: the last good state (the bytes of the last checkpoint, or of the start) and the
    rollbacks to it. Each restores it and multiplies ``players``' learning rates by ``factor`` once more than the
    previous rollback to the same state did."""

    def __init__(self, method: Method, optimizers: dict, sampler, start: int, players: list[str], factor: float):
        self.method, self.optimizers, self.sampler = method, optimizers, sampler
        self.players, self.factor = players, factor
        self.last_good = _checkpoint_bytes(method, optimizers, start, sampler)
        self.count = self.since_good = 0

    def good(self, data: bytes) -> None:
        """``data`` (checkpoint bytes) is the new last good state."""
        self.last_good, self.since_good = data, 0

    def restore(self, err: DivergenceError) -> dict:
        """Roll back after ``err``. returns the event row ``{"step", "event", "rollback", "lr", "error"}``."""
        self.count += 1
        self.since_good += 1
        it = load_checkpoint(self.last_good, self.method, self.optimizers, self.sampler)
        for pl in self.players:  # the learning rates of the last good state, lowered once per rollback to it
            for group in self.optimizers[pl].param_groups:
                group["lr"] *= self.factor ** self.since_good
        lowered = {pl: self.optimizers[pl].param_groups[0]["lr"] for pl in self.players}
        return {"step": it, "event": "rollback", "rollback": self.count, "lr": lowered, "error": str(err)}


def _check_fit_options(steps: int, on_divergence: str, compile: str | None, rollback_lr_factor: float) -> None:
    if on_divergence not in ("raise", "rollback"):
        raise ValueError(f"on_divergence must be 'raise' or 'rollback', not {on_divergence!r}")
    if compile is not None and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be None or one of {COMPILE_MODES}, not {compile!r}")
    if not 0 < rollback_lr_factor < 1:
        raise ValueError(f"rollback_lr_factor must be in (0, 1), got {rollback_lr_factor}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")


def _fit_time(iterations: int, seconds: float, start: int, rollbacks: int, device: torch.device, world: int) -> dict:
    """The record of ``fit_time.json``: this call's iterations, wall seconds, speed and device."""
    return {"iterations": iterations, "seconds": seconds, "iterations_per_s": iterations / seconds,
            "resumed_at": start, "rollbacks": rollbacks, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None, "world_size": world}


def fit(method: Method, sampler, *, steps: int, lr: dict[str, float], betas=(0.5, 0.999),
        run_dir: str | os.PathLike | None = None, log_every: int = 100, ckpt_every: int | None = None,
        resume: bool = True, progress: bool | None = None, desc: str | None = None,
        on_divergence: str = "raise", max_rollbacks: int = 3, rollback_lr_factor: float = 0.5,
        compile: str | None = None, autocast_bf16: bool = False, fused_adam: bool | None = None) -> list[dict]:
    """Train ``method`` for ``steps`` iterations on batches from ``sampler.next()``.

    steps: iterations; one iteration steps every player of ``method.schedule`` (e.g. AVB: k adversary
    steps, then one primal step). lr: player -> Adam learning rate. run_dir: where ``metrics.jsonl``,
    ``fit_config.json``, ``fit_time.json`` (this call's iterations, wall seconds and device) and ``ckpt.pt`` go
    (None: nothing written; under torchrun give every rank the same folder: rank 0 writes, every rank reads the
    checkpoint when resuming). ckpt_every: iterations between checkpoints (the last iteration always checkpoints
    when run_dir is set). resume: continue from ``run_dir/ckpt.pt`` (False: start afresh, dropping the folder's
    old metrics).
    progress: tqdm bar (default: on unless the ``CI`` variable is set).
    on_divergence: ``"raise"`` or ``"rollback"`` (restore the last checkpointed state -- the start if none yet --
    and scale the adversaries' learning rates by ``rollback_lr_factor``; all players' if the method has no
    adversary). compile: None or a ``torch.compile`` mode of :data:`COMPILE_MODES` for ``method.loss``.
    autocast_bf16: run the losses under bf16 autocast. fused_adam: see :func:`make_optimizers` (None: fused on CPU
    and CUDA); recorded in ``fit_config.json``.
    returns: the logged rows, ``{"step", "<player>/<term>": mean over the interval, ...}``; a resumed run's start
    with the rows of ``metrics.jsonl`` up to its checkpoint, so a call on a finished run (zero iterations) returns
    its whole history, and neither ``fit_config.json`` nor ``fit_time.json`` is rewritten.
    raises DivergenceError (a FloatingPointError) naming the iteration, player and terms when a loss term or a
    gradient is not finite (after ``max_rollbacks`` rollbacks in rollback mode); ValueError for bad options.
    """
    _check_fit_options(steps, on_divergence, compile, rollback_lr_factor)
    optimizers = make_optimizers(method, lr, betas, fused=fused_adam)
    fused_adam = bool(next(iter(optimizers.values())).defaults.get("fused"))
    rank, world = ddp.rank_and_world()
    folder = _RunFolder(run_dir, writer=rank == 0)
    start = folder.start(method, optimizers, sampler, resume)
    history: list[dict] = folder.logged_rows(start)  # a resumed run's curve continues from its logged rows
    if steps > start or folder.path is None or not (folder.path / "fit_config.json").exists():  # a finished run's record stays as it was
        folder.write_json("fit_config.json", {
            "steps": steps, "lr": lr, "betas": list(betas), "schedule": method.schedule, "compile": compile,
            "autocast_bf16": autocast_bf16, "fused_adam": fused_adam, "world_size": world,
            "on_divergence": on_divergence, "max_rollbacks": max_rollbacks, "rollback_lr_factor": rollback_lr_factor,
            "resumed_at": start})
    ddp.broadcast_parameters(method)
    if progress is None:
        progress = not os.environ.get("CI")
    device = next(method.parameters()).device
    player_step = _PlayerStep(method, optimizers, sampler, compile, autocast_bf16, distributed=world > 1)
    adversaries = [pl for pl in method.players if pl in method.critic_players] or list(method.players)
    guard = _Rollback(method, optimizers, sampler, start, adversaries, rollback_lr_factor) \
        if on_divergence == "rollback" else None

    method.train()
    meter = _Meter(world > 1, device)
    bar = tqdm(total=steps, initial=start, disable=not progress or rank != 0, desc=desc, leave=False)
    it = start
    _sync(device)
    t_start = time.perf_counter()
    try:
        while it < steps:
            try:  # one iteration: every player of the schedule, k steps each
                for player, k in method.schedule:
                    for _ in range(k):
                        meter.add(player, player_step(player, it))
            except DivergenceError as err:
                if guard is None or guard.count >= max_rollbacks:
                    raise
                event = guard.restore(err)
                it = event["step"]
                meter.clear()
                bar.n = it
                bar.refresh()
                folder.truncate_metrics(it)
                folder.append_metrics(event)
                history = [r for r in history if r["step"] <= it]
                tqdm.write(f"rollback {guard.count}/{max_rollbacks} to iteration {it}: {err}; "
                           f"learning rates now {event['lr']}")
                continue
            it += 1
            bar.update(1)
            if it % log_every == 0 or it == steps:
                history.append(meter.row(it))
                folder.append_metrics(history[-1])
                bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(history[-1].items())[1:4]})
            checkpoint_due = (ckpt_every and it % ckpt_every == 0) or it == steps
            if checkpoint_due and (folder.ckpt is not None or guard is not None):
                data = _checkpoint_bytes(method, optimizers, it, sampler)
                folder.write_checkpoint(data)
                if guard is not None:
                    guard.good(data)
    finally:
        set_trainable(method, None)
        bar.close()
    _sync(device)
    if folder.writes and steps > start:
        folder.write_json("fit_time.json", _fit_time(steps - start, time.perf_counter() - t_start, start,
                                                     guard.count if guard is not None else 0, device, world))
    method.eval()
    return history


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

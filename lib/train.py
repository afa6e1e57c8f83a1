"""One training loop for several players (VAE: one; AVB: adversary + primal; later papers: more).

Each iteration steps the players in ``method.schedule`` order, each ``k`` times, each with a fresh
batch and its own Adam optimizer. Gradient hygiene: while a player steps, every other player's
parameters have ``requires_grad=False``, so its backward pass neither computes nor leaves gradients
there, and its optimizer holds only its own parameters -- an adversary step never changes the
encoder or decoder, and a primal step never changes the adversary (tested).

Checkpoints (``ckpt.pt``) hold state dicts only -- every network, every optimizer, the step, the
batch sampler and all RNG states -- and are written atomically; ``fit`` resumes from one.
"""
from __future__ import annotations

import io
import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .method import Method
from .runs import atomic_write_bytes, rng_state, set_rng_state


def set_trainable(method: Method, player: str | None) -> None:
    """Let only ``player``'s parameters require gradients (``None``: all of them)."""
    for p in method.parameters():
        p.requires_grad_(player is None)
    if player is not None:
        for p in method.player_parameters(player):
            p.requires_grad_(True)


def make_optimizers(method: Method, lr: dict[str, float], betas=(0.5, 0.999)) -> dict[str, torch.optim.Adam]:
    """One Adam per player. lr: player -> learning rate. raises ValueError if a player's lr is missing or unknown."""
    missing, unknown = set(method.players) - set(lr), set(lr) - set(method.players)
    if missing or unknown:
        raise ValueError(f"lr must name exactly the players {sorted(method.players)}; "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    return {p: torch.optim.Adam(method.player_parameters(p), lr=lr[p], betas=tuple(betas)) for p in method.players}


def save_checkpoint(path: str | os.PathLike, method: Method, optimizers: dict, step: int, sampler=None) -> None:
    """Atomically write a checkpoint of state dicts (no pickled modules)."""
    buf = io.BytesIO()
    torch.save({
        "step": step, "method_config": method.config(), "model": method.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "sampler": sampler.state_dict() if sampler is not None else None, "rng": rng_state(),
    }, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, method: Method, optimizers: dict | None = None, sampler=None,
                    restore_rng: bool = True) -> int:
    """Load a checkpoint written by :func:`save_checkpoint` into ``method`` (and optimizers, sampler, RNGs).

    returns: the step it was saved at.
    raises ValueError if it belongs to another method or architecture (names the differences).
    """
    ckpt = torch.load(path, map_location=next(method.parameters()).device, weights_only=False)
    mine, theirs = method.config(), ckpt["method_config"]
    if mine["method"] != theirs["method"]:
        raise ValueError(f"checkpoint {path} is for method {theirs['method']}, not {mine['method']}")
    if mine["shapes"] != theirs["shapes"]:
        diff = sorted(k for k in set(mine["shapes"]) | set(theirs["shapes"]) if mine["shapes"].get(k) != theirs["shapes"].get(k))
        raise ValueError(f"checkpoint {path} has another architecture; differing parameters: {diff[:5]}")
    method.load_state_dict(ckpt["model"])
    if optimizers is not None:
        for k, o in optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
    if sampler is not None and ckpt["sampler"] is not None:
        sampler.load_state_dict(ckpt["sampler"])
    if restore_rng:
        set_rng_state(ckpt["rng"])
    return int(ckpt["step"])


def fit(method: Method, sampler, *, steps: int, lr: dict[str, float], betas=(0.5, 0.999),
        run_dir: str | os.PathLike | None = None, log_every: int = 100, ckpt_every: int | None = None,
        resume: bool = True, progress: bool | None = None, desc: str | None = None) -> list[dict]:
    """Train ``method`` for ``steps`` iterations on batches from ``sampler.next()``.

    steps: iterations; one iteration steps every player of ``method.schedule`` (e.g. AVB: k adversary
    steps, then one primal step). lr: player -> Adam learning rate. run_dir: where ``metrics.jsonl``
    and ``ckpt.pt`` go (None: nothing written). ckpt_every: iterations between checkpoints (the last
    iteration always checkpoints when run_dir is set). resume: continue from ``run_dir/ckpt.pt``.
    progress: tqdm bar (default: on unless the ``CI`` variable is set).
    returns: the logged rows, ``{"step", "<player>/<term>": mean over the interval, ...}``.
    raises FloatingPointError naming the step, player and terms when a loss is not finite.
    """
    optimizers = make_optimizers(method, lr, betas)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    ckpt, start = (run_dir / "ckpt.pt" if run_dir else None), 0
    if ckpt is not None and resume and ckpt.exists():
        start = load_checkpoint(ckpt, method, optimizers, sampler)
    if progress is None:
        progress = not os.environ.get("CI")
    method.train()
    history: list[dict] = []
    sums: dict[str, torch.Tensor] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not progress, desc=desc, leave=False)
    try:
        for it in bar:
            for player, k in method.schedule:
                set_trainable(method, player)
                opt = optimizers[player]
                for _ in range(k):
                    out = method.loss(player, sampler.next())
                    if not torch.isfinite(out["loss"]):
                        terms = {n: float(v.detach()) for n, v in out.items() if v.dim() == 0}
                        raise FloatingPointError(f"non-finite loss at iteration {it}, player {player!r}: {terms}")
                    opt.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    opt.step()
                    for name, v in out.items():
                        if name != "loss":
                            sums[f"{player}/{name}"] = sums[f"{player}/{name}"] + v.detach()
                            counts[f"{player}/{name}"] += 1
            if (it + 1) % log_every == 0 or it + 1 == steps:
                row = {"step": it + 1, **{n: float(s) / counts[n] for n, s in sums.items()}}
                history.append(row)
                sums.clear(), counts.clear()
                if run_dir is not None:
                    with open(run_dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(row.items())[1:4]})
            if ckpt is not None and ((ckpt_every and (it + 1) % ckpt_every == 0) or it + 1 == steps):
                save_checkpoint(ckpt, method, optimizers, it + 1, sampler)
    finally:
        set_trainable(method, None)
        bar.close()
    method.eval()
    return history

"""Validation-split checks behind a standard-profile setting (issue 19: a small sweep is allowed, on the validation
split, the same for method and baseline; nothing is tuned on the test split).

    python -m paper_reproductions.validation --model flow_vae --beta1 0.5 0.9     # notebook 21's baseline, 5k iterations
    python -m paper_reproductions.validation --model vae --hidden 512 512 --lr 1e-3 --steps 20000   # notebook 12's VAE-32
    python -m paper_reproductions.validation --model avb_ac --hidden 512 512 --lr 3e-4 --steps 20000 --k-iwae 100  # AVB+AC-32

Trains ``--model`` (a :mod:`lib.registry` name; notebook 21's networks by default: 784-256-256 MLPs, discriminators
of the same widths, 8 planar layers, z 32; ``--hidden`` and ``--z-dim`` change them) once per value of Adam's beta1, from the same seed, on dynamically binarised MNIST
training images, and reports the negative ELBO on the first ``--n-val`` validation images (binarised once, seed 0)
and, with ``--k-iwae K``, the IWAE-K bound -log p(x) on the first ``--n-val-iwae`` of them (:func:`lib.evaluate.
evaluate_log_px`). For AVB the ELBO's KL term is the adversary's estimate, so its beta1 is chosen by the IWAE bound.
The record (command, device, settings, one row per beta1) is written atomically to
``paper_reproductions/results/validation/<model>_z<z>_h<hidden>_beta1.json``; the parameter file that relies on it quotes it.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from lib import registry
from lib.data import BatchSampler, fixed_binarization, load_mnist
from lib.evaluate import evaluate_elbo, evaluate_log_px
from lib.runs import env_info, git_commit, seed_everything, write_json
from lib.train import fit
from paper_reproductions.report import DATA_DIR


def validation_neg_elbo(model_name: str, *, beta1: float, steps: int, lr: float, seed: int, n_val: int,
                        hidden: tuple[int, int], n_flows: int, z_dim: int, k_iwae: int = 0,
                        n_val_iwae: int = 1000) -> dict:
    """Train one model and return {"value", "sem", "rec", "kl", "n"}: its -ELBO on validation images, in nats, and with
    ``k_iwae`` > 0 "iwae": {"value", "sem", "n", "k"}, -log p(x) by the IWAE-k bound on the first ``n_val_iwae``.
    The discriminators and AVB's adversary (where the model has them) train at twice the primal learning rate, as in
    notebooks 12 and 21."""
    mnist = load_mnist()
    x_val = fixed_binarization(mnist["val"].images, seed=0)[:n_val]
    seed_everything(seed)
    model = registry.build(model_name, x_shape=(1, 28, 28), z_dim=z_dim, arch="mlp", hidden=hidden,
                           adversary_hidden=hidden, adversary_steps=1, n_flows=n_flows)
    rates = {"primal": lr, "discriminators": 2 * lr, "adversary": 2 * lr, "model": lr}
    fit(model, BatchSampler(mnist["train"].images, 100), steps=steps, lr={p: rates[p] for p in model.players},
        betas=(beta1, 0.999), run_dir=None, log_every=steps, desc=f"{model_name} beta1={beta1}")
    e = evaluate_elbo(model, x_val)
    out = {"value": -e["value"], "sem": e["sem"], "rec": -e["rec"], "kl": e["kl"], "n": e["n"]}
    if k_iwae > 0:
        lp = evaluate_log_px(model, x_val[:n_val_iwae], k=k_iwae)
        out["iwae"] = {"value": -lp["value"], "sem": lp["sem"], "n": min(n_val_iwae, n_val), "k": k_iwae}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="flow_vae")
    ap.add_argument("--beta1", type=float, nargs="+", default=[0.5, 0.9])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=3e-4, help="primal learning rate (discriminators: twice it)")
    ap.add_argument("--n-val", type=int, default=5000)
    ap.add_argument("--hidden", type=int, nargs=2, default=[256, 256], help="MLP widths (encoder, decoder, discriminators)")
    ap.add_argument("--z-dim", type=int, default=32)
    ap.add_argument("--k-iwae", type=int, default=0, help="also the IWAE-k bound (0: no); needed for AVB")
    ap.add_argument("--n-val-iwae", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.steps < 1 or not 1 <= args.n_val <= 10_000 or any(not 0 <= b < 1 for b in args.beta1):
        ap.error("need --steps >= 1, 1 <= --n-val <= 10000 and every beta1 in [0, 1)")
    if args.k_iwae < 0 or args.n_val_iwae < 1:
        ap.error("need --k-iwae >= 0 and --n-val-iwae >= 1")
    torch.set_num_threads(args.threads)
    settings = {"hidden": tuple(args.hidden), "n_flows": 8, "z_dim": args.z_dim}
    rows = []
    for b1 in args.beta1:
        t = time.perf_counter()
        r = validation_neg_elbo(args.model, beta1=b1, steps=args.steps, lr=args.lr, seed=args.seed, n_val=args.n_val,
                                k_iwae=args.k_iwae, n_val_iwae=args.n_val_iwae, **settings)
        rows.append({"beta1": b1, "val_neg_elbo": r, "seconds": round(time.perf_counter() - t, 1)})
        iw = f", -IWAE-{r['iwae']['k']} {r['iwae']['value']:.2f} ± {r['iwae']['sem']:.2f}" if "iwae" in r else ""
        print(f"{args.model} beta1={b1}: validation -ELBO {r['value']:.2f} ± {r['sem']:.2f} "
              f"(rec {r['rec']:.1f}, KL {r['kl']:.1f}){iw}; {rows[-1]['seconds']} s", flush=True)
    path = DATA_DIR / "validation" / f"{args.model}_z{args.z_dim}_h{args.hidden[0]}_beta1.json"
    write_json(path, {"command": "python -m paper_reproductions.validation " + " ".join(sys.argv[1:] if argv is None else argv),
                      "model": args.model, "steps": args.steps, "lr_primal": args.lr, "seed": args.seed,
                      "split": f"validation, first {args.n_val} images binarised once (seed 0)", "settings": settings,
                      "device": env_info(torch.device("cpu"))["device_name"], "git_commit": git_commit(), "rows": rows})
    print("->", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

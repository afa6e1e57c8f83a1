"""Validation-split checks behind notebook 41's standard profile (issue 19: a small sweep on the validation split;
nothing is tuned on the test split): the DCGAN's budget (iterations, width), the VAE/GAN repair and its gamma, and AVAE
with the released code's form of L_Z beside the slides' (notebook 41 runs both: models avae and avae_code).

    python -m paper_reproductions.validation_gans --model gan --width 16 --steps 8000          # the DCGAN floor
    python -m paper_reproductions.validation_gans --model vaegan --steps 4000 --gamma 0.1 1 --beta 0.0625
    python -m paper_reproductions.validation_gans --model vaegan --steps 2000 --gamma 0.1 --dis-batches joint --beta 1
    python -m paper_reproductions.validation_gans --model avae --steps 6000 --eval-every 2000 --lz-variant code

Trains one notebook-41 model (``--model``: vae, gan, vaegan, bigan, avae; notebook 41's DCGAN networks, latent 32,
batch 64, Adam 2e-4 with beta1 0.5) from ``--seed`` on the 50k training images of ``--dataset``, once per value of
``--gamma`` (VAE/GAN's decoder feature-reconstruction weight; ignored by the other models), and every ``--eval-every``
iterations scores 2,000 samples against the first 2,000 validation images (MNIST-FD / MNIST-IS in the domain CNN's
features, :class:`lib.domain_classifier.DomainScores`; the next 2,000 validation images are the held-out floor) and,
for models with an encoder, the reconstruction MSE of validation images 4,000-5,999 against their input and against
another image. Training continues from the previous evaluation's state (one :func:`lib.train.fit` call per interval,
resuming from its checkpoint in a temporary folder). The record (command, device, settings, one row per evaluation) is
written atomically to ``paper_reproductions/results/validation/<dataset>_<model>_w<width>_<tag>.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from lib import registry
from lib.avae import L_Z_VARIANTS
from lib.data import BatchSampler, load_image_dataset
from lib.domain_classifier import DomainScores, mnist_classifier
from lib.reconstruction_metrics import reconstruction_errors
from lib.runs import env_info, git_commit, seed_everything, write_json
from lib.train import fit
from paper_reproductions.report import DATA_DIR

REGISTRY_NAME = {"vae": "dcgan_vae", "gan": "dcgan", "vaegan": "vaegan", "bigan": "bigan", "avae": "avae"}
N_SCORE = 2000


def options(model: str, *, beta: float, gamma: float, dis_batches: str, lz_variant: str = "slides") -> dict:
    """Notebook 41's model options (VAE and AVAE: the KL weight beta; AVAE: the form of L_Z, notebook 41's "slides" or
    the released code's "code", :func:`lib.avae.latent_reconstruction_loss`; VAE/GAN: gamma, beta, dis_batches)."""
    return {"vae": dict(beta=beta), "gan": {}, "bigan": {}, "avae": dict(beta=beta, lz_weight=1.0, lz_variant=lz_variant),
            "vaegan": dict(gamma=gamma, beta=beta, dis_batches=dis_batches)}[model]


def validation_curve(model: str, *, dataset: str, width: int, steps: int, eval_every: int, seed: int, lr: float,
                     opts: dict, desc: str = "") -> list[dict]:
    """Train ``model`` and score it every ``eval_every`` iterations on validation images; returns one row per
    evaluation: {"step", "seconds", "fd", "is", "last" (the training log's last row), ["mse", "mse_other"]}, with
    "heldout" (the floor) in every row."""
    data = load_image_dataset(dataset)
    train, val = data["train"].images, data["val"].images
    scores = DomainScores(val, N_SCORE, mnist_classifier(seed=0, device="cpu", dataset=dataset))
    x_rec = val[2 * N_SCORE: 3 * N_SCORE]
    seed_everything(seed)
    net = registry.build(REGISTRY_NAME[model], x_shape=tuple(train.shape[1:]), z_dim=32, width=width, noise_dim=16,
                         **opts)
    sampler = BatchSampler(train, 64, dynamic_binarization=False)
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(eval_every, steps + 1, eval_every):
            hist = fit(net, sampler, steps=s, lr={p: lr for p in net.players}, betas=(0.5, 0.999), run_dir=Path(tmp),
                       log_every=100, ckpt_every=eval_every, progress=False)
            torch.manual_seed(0)
            sc = scores.score(torch.cat([net.sample(500) for _ in range(N_SCORE // 500)]))
            row = {"step": s, "seconds": round(time.perf_counter() - t0, 1), "fd": sc["mnist_fd"]["value"],
                   "is": sc["mnist_is"]["value"], "heldout_fd": scores.heldout["mnist_fd"]["value"],
                   "heldout_is": scores.heldout["mnist_is"]["value"], "last": hist[-1]}
            try:
                rec = net.reconstruct(x_rec)
                row["mse"] = reconstruction_errors(x_rec, rec)["mse"]["value"]
                row["mse_other"] = reconstruction_errors(x_rec.roll(1, 0), rec)["mse"]["value"]
            except NotImplementedError:
                pass
            rows.append(row)
            rec_text = f", MSE {row['mse']:.4f} (vs another image {row['mse_other']:.4f})" if "mse" in row else ""
            print(f"{desc} iteration {s}: FD {row['fd']:.2f}, IS {row['is']:.3f}{rec_text}; {row['seconds']} s",
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(REGISTRY_NAME), required=True)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--gamma", type=float, nargs="+", default=[1e-5], help="VAE/GAN's gamma, one run per value")
    ap.add_argument("--beta", type=float, default=0.0625, help="KL weight of VAE, AVAE and VAE/GAN (notebook 41's BETA)")
    ap.add_argument("--dis-batches", default="separate", choices=["separate", "joint"], help="VAE/GAN's discriminator passes")
    ap.add_argument("--lz-variant", default="slides", choices=list(L_Z_VARIANTS),
                    help="AVAE's latent reconstruction loss L_Z: the slides' form (notebook 41) or the released code's")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.steps < 1 or not 1 <= args.eval_every <= args.steps or args.width < 1:
        ap.error("need --steps >= 1, 1 <= --eval-every <= --steps and --width >= 1")
    if any(g < 0 for g in args.gamma) or args.beta < 0:
        ap.error("--gamma and --beta must be >= 0")
    torch.set_num_threads(args.threads)
    gammas = args.gamma if args.model == "vaegan" else [None]
    runs = []
    for g in gammas:
        opts = options(args.model, beta=args.beta, gamma=g if g is not None else 0.0, dis_batches=args.dis_batches,
                       lz_variant=args.lz_variant)
        rows = validation_curve(args.model, dataset=args.dataset, width=args.width, steps=args.steps,
                                eval_every=args.eval_every, seed=args.seed, lr=args.lr, opts=opts,
                                desc=f"{args.model} {opts}")
        runs.append({"options": opts, "rows": rows})
    tag = f"s{args.steps}" + (f"_{args.dis_batches}_beta{args.beta:g}" if args.model == "vaegan" else "") + (
        f"_lz_{args.lz_variant}" if args.model == "avae" else "")
    path = DATA_DIR / "validation" / f"{args.dataset}_{args.model}_w{args.width}_{tag}.json"
    write_json(path, {"command": "python -m paper_reproductions.validation_gans " + " ".join(
        sys.argv[1:] if argv is None else argv), "model": args.model, "dataset": args.dataset, "width": args.width,
        "z_dim": 32, "batch_size": 64, "lr": args.lr, "betas": [0.5, 0.999], "seed": args.seed,
        "split": f"validation: samples scored against images 0-{N_SCORE - 1}, held out {N_SCORE}-{2 * N_SCORE - 1}, "
                 f"reconstructions of {2 * N_SCORE}-{3 * N_SCORE - 1}",
        "device": env_info(torch.device("cpu"))["device_name"], "git_commit": git_commit(), "runs": runs})
    print("->", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

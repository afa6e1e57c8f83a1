# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 31 · The Biadversarial VAE against a matched Gaussian VAE: a bimodal toy and MNIST
#
# Fickinger (2019) replaces both Gaussian assumptions of the VAE by f-GAN games for the KL divergence
# (derived and checked in `30_bavae_objective`): an implicit encoder $z = f_\phi(x, \epsilon)$ with an inference
# discriminator $T_\psi(x,z)$, and a decoder without a Gaussian output with a generative discriminator $D_\omega(x,z)$:
#
# $$\min_{\theta,\phi}\max_{\psi,\omega}\; V_I + V_G,\qquad
# V_I = \mathbb E_{q(x)}\big[\mathbb E_{q_\phi(z|x)} T_\psi - \mathbb E_{p(z)} e^{T_\psi - 1}\big],\quad
# V_G = \mathbb E_{q(x)q_\phi(z|x)} D_\omega - \mathbb E_{q_\phi(z)p_\theta(x|z)} e^{D_\omega - 1}.$$
#
# The paper has no experiments; this notebook defines them. Our choices, each a decision the paper leaves open:
#
# * **Decoder family.** An implicit decoder $x = g_\theta(z, \xi) = \mathrm{sigmoid}(\mathrm{net}([z, \xi]))$,
#   $\xi \sim \mathcal N(0, I_{16})$, on grey-level MNIST in $[0, 1]$: no density is ever evaluated, and $p_\theta(x|z)$ may be
#   multimodal. (A Bernoulli decoder would keep a factorised parametric likelihood, which is what the paper sets out to remove.)
# * **The entropy term.** $\mathbb E_{q_\phi(x,z)}\log p_\theta(x|z) = -\mathbb E_{q_\phi(z)}\mathrm{KL}(q_\phi(x|z)\,\|\,p_\theta(x|z)) - \mathbb E_{q_\phi(z)} H(q_\phi(x|z))$.
#   The entropy is constant in $\theta$, so the decoder's gradient is the ELBO's, but not in $\phi$: the paper's game adds
#   $I_q(x;z)$ to the encoder's loss, and with an implicit decoder, *posterior collapse* (codes that ignore $x$, a decoder that is
#   a plain generator) is one of its global optima (notebook 30, part c). We therefore train both
#   **BAVAE** (the paper's game, `entropy="dropped"`) and **BAVAE-H** (`entropy="restored"`: since
#   $\mathbb E_x\mathrm{KL}(q_\phi(z|x)\|p(z)) - I_q(x;z) = \mathrm{KL}(q_\phi(z)\|p(z))$, the encoder plays $V_G$ plus a KL game on
#   codes alone, which has exactly the ELBO's gradients; `lib.bavae`).
# * **Bounded discriminators.** Every discriminator's output passes through $t \mapsto t_{\max} - \mathrm{softplus}(t_{\max} - t)$,
#   $t_{\max} = 10$. The unconstrained maximiser $1 + \log P/Q$ is unbounded wherever the supports differ (always, early in
#   training), and without the bound our first runs diverged (a single generated image with a large $D$ makes $e^{D-1}$
#   overflow). A bounded family still gives a lower bound on each KL. For the same reason the
#   inference discriminator has no analytic $\tfrac12\|z\|^2$ term (as AVB's has): with it $\mathbb E_{p(z)}e^{T-1}$ is infinite.
# * **Baseline.** A Gaussian VAE with the same networks (Gaussian encoder; Gaussian decoder with a fixed scale
#   $\sigma = 0.1$, i.e. the L2 loss the paper criticises), the same data, batch size, optimiser and number of iterations.
#
# **Targets (ours; the paper gives none).** BAVAE's MNIST-domain Fréchet distance below the VAE's; reconstruction MSE no worse
# than 1.5 × the VAE's; training that completes without divergence over 3 seeds (the standard profile runs seeds 0, 1, 2). They are
# measured and printed, not asserted: a negative result is reported as one.

# %% tags=["parameters"]
PROFILE = "auto"
SEED = 0
DEVICE = "auto"
RUN_DIR = ""
STEPS = 0
MODELS = "vae,bavae,bavae_h"
# The quick profile (a smoke test): 784-256-256 MLPs, 2k iterations per model on one CPU thread (VAE ~15 s, each BAVAE
# ~1 min); toy 3k iterations. The full profile's settings (AVB's convolutional encoder / decoder, 100k iterations, FID on 10k
# samples) are in paper_reproductions/params/31_bavae_mnist.full.yaml.
SETTINGS = {"arch": "mlp", "hidden": (256, 256), "adversary_hidden": (256, 256), "z_dim": 8, "steps": 2_000,
            "batch_size": 100, "lr_primal": 3e-4, "lr_discriminators": 6e-4, "noise_dim": 16, "decoder_noise_dim": 16,
            "decoder_std": 0.1, "t_max": 10.0, "n_score": 2_000, "n_fid": 0, "toy_steps": 3_000, "toy_batch": 256}

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.distributions as D
import torch.nn as nn

from lib.bavae import BAVAE
from lib.data import BatchSampler, load_mnist
from lib.evaluate import evaluate_elbo, mean_sem
from lib import registry
from lib.nets import Adversary, GaussianDecoder, ImplicitDecoder
from lib.plotting import TWO_COLUMN, learning_curves, samples_and_reconstructions, savefig
from lib.notebook import open_notebook
from lib.runs import seed_everything
from lib.domain_classifier import DomainScores, mnist_classifier
from lib.inception_metrics import MetricUnavailable, inception_metrics
from lib.reconstruction_metrics import reconstruction_errors
from lib.train import fit
from lib.vae import VAE

nb = open_notebook(globals(), "31_bavae_mnist")
profile, device = nb.profile, nb.device
if STEPS:
    SETTINGS["steps"] = int(STEPS)
model_names = [m.strip() for m in MODELS.split(",") if m.strip()]
cfg = dict(**SETTINGS, models=model_names, betas=(0.5, 0.999),
           data="MNIST grey levels in [0, 1], 50k/10k/10k, no binarisation")
run_dir = nb.start(config=cfg)
LABEL = {"vae": "Gaussian VAE", "bavae": "BAVAE", "bavae_h": "BAVAE-H"}
save = SEED == 0  # figures come from seed 0; other seeds only add their numbers

# %% [markdown]
# ## 1. Multimodality: a bimodal decoder
# One "pixel" in $[0, 1]$, the range of the image decoders: $x = b + 0.03\,n$, $n \sim \mathcal N(0, 1)$, $b \in \{0.2, 0.8\}$
# (dark or bright, probability ½ each), and a code that carries no information about it: the encoder is held fixed at
# $q(z|x) = \mathcal N(0, 1)$, as for a pixel whose value the code does not determine. The right decoder $p(x|z)$ is then bimodal
# for every $z$. Both decoders are trained on the same codes: the Gaussian one by maximum likelihood (learned mean **and** scale:
# the best Gaussian), the implicit one $x = g_\theta(z, \xi)$ by BAVAE's generative game $V_G$, whose direct KL
# $\mathrm{KL}(q(x|z)\,\|\,p_\theta(x|z))$ is mode covering (notebook 30, part d). The implicit decoder is trained twice: with the
# paper's minimax game, where the decoder minimises $V_G$ itself, i.e. maximises $\mathbb E\, e^{D - 1}$ on its samples, and with
# f-GAN's *non-saturating* variant (Nowozin et al. 2016, Sec. 3.2; `generator_loss="nonsaturating"`), which maximises
# $\mathbb E\, D$ instead: same fixed point, but a gradient that is not multiplied by $e^{D-1}$, which vanishes on samples the
# discriminator rejects (samples left in the gap). We count the decoder samples' mass within 0.1 of each mode and in the gap
# $|x - 0.5| < 0.15$.

# %%
class NoCode(nn.Module):
    """A fixed encoder for the toy: q(z|x) = N(0, 1) whatever x, z_dim 1, no parameters."""
    z_dim = 1

    def forward(self, x):
        return D.Independent(D.Normal(torch.zeros_like(x[:, :1]), 1.0), 1)

    def sample(self, x):
        return self(x).rsample()


class BimodalPixel:
    """Batches (n, 1) of x = b + 0.03 n, b in {0.2, 0.8}."""

    def __init__(self, batch_size, generator=None):
        self.batch_size, self.g = batch_size, generator

    def next(self, n=None):
        n = n or self.batch_size
        b = 0.2 + 0.6 * torch.randint(0, 2, (n,), generator=self.g, device=device).float()
        return (b + 0.03 * torch.randn(n, generator=self.g, device=device)).unsqueeze(1)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def mode_masses(x: torch.Tensor) -> dict:
    """Fractions of samples within 0.1 of each mode (0.2: dark, 0.8: bright) and in the gap |x - 0.5| < 0.15."""
    return {"dark": float(((x - 0.2).abs() < 0.1).float().mean()), "bright": float(((x - 0.8).abs() < 0.1).float().mean()),
            "gap": float(((x - 0.5).abs() < 0.15).float().mean())}


seed_everything(SEED)
toy_vae = VAE(NoCode(), GaussianDecoder(1, (1,), hidden=(64, 64))).to(device)  # learned scale
fit(toy_vae, BimodalPixel(cfg["toy_batch"], torch.Generator(device=device).manual_seed(SEED)), steps=cfg["toy_steps"],
    lr={"model": 1e-3}, progress=False, run_dir=run_dir / "toy_vae")
toy_bavae = {}
for loss in ("minimax", "nonsaturating"):
    seed_everything(SEED)
    toy_bavae[loss] = BAVAE(NoCode(), ImplicitDecoder(1, (1,), hidden=(64, 64), noise_dim=2),
                            Adversary(1, 1, (64, 64), analytic_prior=False), Adversary(1, 1, (64, 64), analytic_prior=False),
                            t_max=cfg["t_max"], generator_loss=loss).to(device)
    fit(toy_bavae[loss], BimodalPixel(cfg["toy_batch"], torch.Generator(device=device).manual_seed(SEED)),
        steps=cfg["toy_steps"], lr={"primal": 1e-3, "discriminators": 2e-3}, progress=False,
        run_dir=run_dir / f"toy_bavae_{loss}")

with torch.no_grad():
    gen = torch.Generator(device=device).manual_seed(SEED + 1)
    z_toy = torch.randn(20_000, 1, generator=gen, device=device)
    toy_samples = {"data": BimodalPixel(20_000, gen).next(), "Gaussian VAE": toy_vae.decoder.rsample(z_toy, generator=gen),
                   **{f"BAVAE ({k})": m.decoder.sample(z_toy, generator=gen) for k, m in toy_bavae.items()}}
    vae_mean, vae_scale = toy_vae.decoder(z_toy)
toy_mass = {k: mode_masses(v[:, 0]) for k, v in toy_samples.items()}
print(pd.DataFrame(toy_mass).T.round(3).to_string())
print(f"Gaussian decoder: mean between {float(vae_mean.min()):.3f} and {float(vae_mean.max()):.3f},"
      f" learned scale {float(vae_scale.mean()):.3f}")

# %% [markdown]
# Checks, each able to fail: the data put (almost) no mass in the gap; the best Gaussian decoder must (its mean sits between the
# modes, within 0.05 of 0.5, and any Gaussian wide enough to reach both modes covers the gap); BAVAE's implicit decoder, trained
# with the non-saturating loss, covers **both** modes (at least a third of its mass on each: a mode-dropping decoder fails) and
# puts less than 10% in the gap. The minimax decoder's numbers are printed and recorded, not asserted: in our runs it sometimes
# leaves a large part of its mass in the gap and sometimes covers both modes (RESULTS.md lists both decoders' gap mass for
# seeds 0, 1 and 2).

# %%
assert toy_mass["data"]["gap"] < 0.01
assert toy_mass["Gaussian VAE"]["gap"] > 0.25 and float((vae_mean - 0.5).abs().max()) < 0.05, toy_mass["Gaussian VAE"]
ns = toy_mass["BAVAE (nonsaturating)"]
assert min(ns["dark"], ns["bright"]) > 1 / 3 and ns["gap"] < 0.10, ns

fig, axes = plt.subplots(1, 4, figsize=(TWO_COLUMN, 2.5), layout="constrained")
for ax, name in zip(axes, [k for k in toy_samples if k != "data"]):
    ax.scatter(z_toy[:2000, 0].cpu(), toy_samples[name][:2000, 0].cpu(), s=1, alpha=0.4, rasterized=True)
    ax.axhspan(0.35, 0.65, color="red", alpha=0.08)
    ax.set(title=name.replace(" (", "\n("), xlabel="code $z$", ylabel="$x$", ylim=(-0.1, 1.1))
bins = np.linspace(-0.1, 1.1, 97)
for name, xs in toy_samples.items():
    axes[3].hist(xs[:, 0].cpu().numpy(), bins=bins, density=True, histtype="step", lw=1.5, label=name)
axes[3].axvspan(0.35, 0.65, color="red", alpha=0.08)
axes[3].set(title="$x$ of the samples\n(gap shaded)", xlabel="$x$", ylabel="density")
fig.legend(*axes[3].get_legend_handles_labels(), loc="outside lower center", ncol=len(toy_samples))
fig.suptitle(f"Bimodal decoder ({profile} profile, seed {SEED}): the best Gaussian sits between the modes;\n"
             "the implicit decoder can cover both")
if save:
    savefig(fig, "31_bavae_toy_bimodal_decoder")
plt.show()

# %% [markdown]
# ## 2. MNIST: training
# Grey-level MNIST (no binarisation: the implicit decoder outputs grey levels, and a Bernoulli sample would reintroduce a
# parametric likelihood). Every model starts from the same seed; one iteration is one step of the discriminators, then one
# primal step (`lib.train.fit`). `fit` raises on a non-finite loss, so a finished cell is a run that did not diverge.

# %%
mnist = load_mnist()
train_x, x_test = mnist["train"].images.to(device), mnist["test"].images.to(device)


def build(name: str):
    kw = dict(likelihood="gaussian", decoder_std=cfg["decoder_std"]) if name == "vae" else dict(t_max=cfg["t_max"])
    return registry.build(name, x_shape=(1, 28, 28), z_dim=cfg["z_dim"], arch=cfg["arch"], hidden=cfg["hidden"],
                          adversary_hidden=cfg["adversary_hidden"], noise_dim=cfg["noise_dim"],
                          decoder_noise_dim=cfg["decoder_noise_dim"], **kw).to(device)


models, histories = {}, {}
for name in model_names:
    seed_everything(SEED)
    model = build(name)
    lr = {"model": cfg["lr_primal"]} if name == "vae" else {"primal": cfg["lr_primal"], "discriminators": cfg["lr_discriminators"]}
    histories[name] = fit(model, BatchSampler(train_x, cfg["batch_size"], dynamic_binarization=False), steps=cfg["steps"], lr=lr,
                          betas=cfg["betas"], run_dir=run_dir / name, log_every=max(cfg["steps"] // 40, 1),
                          ckpt_every=max(cfg["steps"] // 10, 1), desc=name)
    models[name] = model
    last = histories[name][-1]
    print(f"{LABEL[name]:>12}: " + ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in last.items()
                                              if k.startswith(("model/", "primal/V_"))))

# %% [markdown]
# ## 3. Samples and reconstructions
# The VAE shows its decoder **means** (its samples would add independent N(0, 0.1²) noise to every pixel); BAVAE has no mean image,
# so it shows decoder **samples** $g_\theta(z, \xi)$. Reconstructions: $z \sim q_\phi(z|x)$, then the decoder's mean (VAE) or one
# sample (BAVAE).

# %%
@torch.no_grad()
def decode(name, model, z, generator=None):
    return model.decoder(z)[0] if name == "vae" else model.decoder.sample(z, generator=generator)


@torch.no_grad()
def reconstruct(name, model, x, generator=None):
    return decode(name, model, model.sample_posterior(x), generator)


g = torch.Generator(device=device).manual_seed(SEED)
fig = samples_and_reconstructions(
    models, x_test[:32], labels=LABEL, sample_caption=lambda name: "means" if name == "vae" else "samples",
    sample=lambda name, model: decode(name, model, torch.randn(64, cfg["z_dim"], generator=g, device=device), g),
    reconstruct=lambda name, model, x: reconstruct(name, model, x, g),
    title=f"MNIST ({profile} profile, seed {SEED}, {cfg['steps']} iterations each)")
if save:
    savefig(fig, "31_bavae_mnist_samples")
plt.show()

# %% [markdown]
# ## 4. Scores
# * **MNIST-FD / MNIST-IS**: Fréchet distance and Inception-style score in the features of a small MNIST classifier
#   (`lib.domain_classifier`; MNIST-specific, not FID/IS), on `n_score` generated images against test images, with a disjoint set of
#   test images as the floor.
# * **FID** (Inception pool3, torchmetrics) in the full profile only: on a CPU Inception runs at ~3 images/s.
# * **Reconstruction MSE** per pixel, and the same MSE against a *different* test image: if the two are equal, the code carries no
#   information about $x$ (posterior collapse).
# * **Likelihood**: the VAE's ELBO is a bound on a *density* on $\mathbb R^{784}$ with $\sigma = 0.1$ (not comparable with
#   binarised-MNIST nats); BAVAE defines no likelihood at all (implicit encoder and decoder), so none is reported for it.
# * **KL estimates**: the inference game's value $V_I$ on test images, a lower bound on $\mathbb E_x\mathrm{KL}(q_\phi(z|x)\|p(z))$
#   (for the VAE, its analytic KL).

# %%
n = cfg["n_score"]
domain = DomainScores(x_test, n, mnist_classifier(seed=0, device=device))  # reference x_test[:n]; held out x_test[n: 2n]
x_rec_in = x_test[2 * n: 3 * n] if 3 * n <= len(x_test) else x_test[-n:]


def sample_and_reconstruction_scores():
    scores, recs, fid = {}, {}, {}
    for name, model in models.items():
        g = torch.Generator(device=device).manual_seed(SEED)
        fake = torch.cat([decode(name, model, torch.randn(500, cfg["z_dim"], generator=g, device=device), g)
                          for _ in range(0, n, 500)])[:n]
        scores[name] = domain.score(fake)
        rec = reconstruct(name, model, x_rec_in, g)
        recs[name] = {"rec": reconstruction_errors(x_rec_in, rec)["mse"],
                      "other": reconstruction_errors(x_rec_in.roll(1, 0), rec)["mse"]}
        if cfg["n_fid"]:
            try:
                big = torch.cat([decode(name, model, torch.randn(500, cfg["z_dim"], generator=g, device=device), g)
                                 for _ in range(0, cfg["n_fid"], 500)])[: cfg["n_fid"]]
                fid[name] = inception_metrics(x_test[: cfg["n_fid"]], big, device=device, split="test")["fid"]
            except MetricUnavailable as err:
                print("FID skipped:", err)
    return scores, recs, fid


scores, recs, fid = nb.cached("sample_and_reconstruction_scores", sample_and_reconstruction_scores)

with torch.no_grad():
    kl = {}
    for name, model in models.items():
        xs = x_test[:1000]
        if name == "vae":
            kl[name] = float(D.kl_divergence(model.encoder(xs), model.prior(device)).mean())
        else:
            kl[name] = float(model.game_values(xs, model.game_samples(xs))["V_I"])
    vae_elbo = nb.cached("vae_elbo", lambda: evaluate_elbo(models["vae"], x_test[:2000])) if "vae" in models else None

table = pd.DataFrame({LABEL[k]: {"MNIST-FD (lower better)": scores[k]["mnist_fd"]["value"],
                                 "MNIST-IS (higher better)": scores[k]["mnist_is"]["value"],
                                 "rec. MSE": recs[k]["rec"]["value"], "MSE vs another image": recs[k]["other"]["value"],
                                 "KL(q(z|x)||p(z)) estimate": kl[k],
                                 **({"FID": fid[k]["value"]} if k in fid else {})} for k in models}).T
print(f"held-out test images: MNIST-FD {domain.heldout['mnist_fd']['value']:.2f}, "
      f"MNIST-IS {domain.heldout['mnist_is']['value']:.2f}")
print(table.round(4).to_string())
if vae_elbo:
    print(f"Gaussian VAE test ELBO (density on R^784, sigma = {cfg['decoder_std']}): {vae_elbo['value']:.1f} ± {vae_elbo['sem']:.1f} nats")

# %% [markdown]
# Checks that hold whatever the outcome of the comparison: every model's samples are farther from the test set than held-out
# test images are (the scores can tell models from data), and the Gaussian VAE's reconstructions carry information about their
# input (MSE against the input well below the MSE against another image), so the collapse measure can fail.

# %%
for name in models:
    assert scores[name]["mnist_fd"]["value"] > domain.heldout["mnist_fd"]["value"], name
if "vae" in recs:
    assert recs["vae"]["rec"]["value"] < 0.5 * recs["vae"]["other"]["value"], recs["vae"]

# %% [markdown]
# ## 5. The targets, as measured

# %%
targets = {}
if "vae" in models:
    for name in (m for m in models if m != "vae"):
        fd_ratio = scores[name]["mnist_fd"]["value"] / scores["vae"]["mnist_fd"]["value"]
        mse_ratio = recs[name]["rec"]["value"] / recs["vae"]["rec"]["value"]
        targets[name] = {"fd_ratio": fd_ratio, "mse_ratio": mse_ratio}
        print(f"{LABEL[name]:>8}: MNIST-FD {fd_ratio:.2f} x the VAE's (target < 1: {'met' if fd_ratio < 1 else 'NOT met'});"
              f" reconstruction MSE {mse_ratio:.2f} x the VAE's (target <= 1.5: {'met' if mse_ratio <= 1.5 else 'NOT met'});"
              f" MSE / MSE vs another image {recs[name]['rec']['value'] / recs[name]['other']['value']:.2f}"
              f" (1 = codes ignore x)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN, 2.8), layout="constrained")
adv = {LABEL[k]: h for k, h in histories.items() if k != "vae"}
learning_curves(adv, "discriminators/V_G", ax=axes[0], ylabel="$V_G$ per batch [nats]", legend=False)
axes[0].set_title("Generative game value $V_G$, a lower bound on\n"
                  r"$\mathbb{E}\,\mathrm{KL}(q(x\mid z)\,\|\,p_\theta(x\mid z))$")
learning_curves(adv, "discriminators/V_I", ax=axes[1], ylabel="$V_I$ per batch [nats]", legend=False)
axes[1].set_title("Inference game value $V_I$, a lower bound on\n"
                  r"$\mathbb{E}\,\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(adv))
fig.suptitle(f"BAVAE game values on MNIST ({profile} profile, seed {SEED}, {cfg['steps']} iterations each)")
if save:
    savefig(fig, "31_bavae_mnist_curves")
plt.show()

# %%
metrics = {}
for k, masses in toy_mass.items():
    key = {"data": "toy_data", "Gaussian VAE": "toy_vae", "BAVAE (minimax)": "toy_bavae_minimax",
           "BAVAE (nonsaturating)": "toy_bavae_nonsat"}[k]
    metrics[f"{key}_mode_mass_min"] = {"value": min(masses["dark"], masses["bright"]), "n": z_toy.shape[0],
                                       "implementation": "smaller of the two modes' mass (|x2 - 0.2| or |x2 - 0.8| < 0.1) of decoder samples"}
    metrics[f"{key}_gap_mass"] = {"value": masses["gap"], "n": z_toy.shape[0],
                                  "implementation": "mass of decoder samples in the gap |x2 - 0.5| < 0.15"}
for name in models:
    for m in ("mnist_fd", "mnist_is"):
        metrics[f"{name}_{m}"] = {**scores[name][m], "split": "test"}
    metrics[f"{name}_rec_mse"] = {**recs[name]["rec"], "split": "test",
                                  "implementation": "per-pixel MSE of one reconstruction (VAE: decoder mean; BAVAE: a sample)"}
    metrics[f"{name}_rec_mse_other"] = {**recs[name]["other"], "split": "test",
                                        "implementation": "per-pixel MSE of the reconstruction against another test image"}
    metrics[f"{name}_kl_estimate"] = {"value": kl[name], "n": 1000, "split": "test",
                                      "implementation": "analytic KL (VAE) or the inference game value V_I (BAVAE), nats"}
    if name in fid:
        metrics[f"{name}_fid"] = fid[name]
for name, t in targets.items():
    metrics[f"{name}_fd_over_vae"] = {"value": t["fd_ratio"], "implementation": "MNIST-FD ratio, BAVAE / Gaussian VAE"}
    metrics[f"{name}_mse_over_vae"] = {"value": t["mse_ratio"], "implementation": "reconstruction MSE ratio, BAVAE / Gaussian VAE"}
metrics.update(domain.heldout_metrics())
nb.finish(metrics)
for k, v in metrics.items():
    print(f"{k:>28}: {v['value']:9.4f}")

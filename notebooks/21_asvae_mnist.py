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
# # 21 · AS-VAE, AS-VAE-r and AS-VAE-g on MNIST, against a flow VAE (Pu et al. 2017, Sec. 5.2)
#
# The objective derived and checked in `20_asvae_objective`, trained on dynamically binarised MNIST
# (50k / 10k / 10k). The primal players (encoder $\phi$, decoder $\theta$) maximise
#
# $$\mathcal L_{xz} = \underbrace{\mathbb E_{q(x),\epsilon}\big[\log p_\theta(x\mid z_\epsilon) - f_{\psi_1}(x, z_\epsilon)\big]}_{\text{AS-VAE-r keeps only this}}
#  + \underbrace{\mathbb E_{p(z),\xi}\big[\log q_\phi(z\mid x_\xi) - f_{\psi_2}(x_\xi, z)\big]}_{\text{AS-VAE-g keeps only this}}$$
#
# while the two discriminators $f_{\psi_1}, f_{\psi_2}$ play Lemma 1's logistic game (`lib.asvae`).
#
# **Encoder.** As in the paper, $q_\phi(z\mid x)$ is a normalizing flow: a diagonal Gaussian followed by planar
# layers whose parameters the encoder outputs for each $x$ (Rezende & Mohamed 2015; 80 layers in the full
# profile, 8 in quick). The second term needs $\log q_\phi(z\mid x_\xi)$ at a *prior* sample $z$, i.e. the flow's
# inverse, which a planar layer $z' = z + u\tanh(w^\top z + b)$ does not have in closed form. We keep the paper's
# flow and invert it numerically (`lib.flows.PlanarFlowEncoder.log_prob`): with $w^\top u > -1$ each layer reduces to
# a monotone scalar equation in $a = w^\top z$, solved by bisection; one final Newton step carries the exact
# gradient of the root (implicit function theorem). A flow with an analytic inverse (coupling layers) would
# have been faster, but would no longer be the model whose numbers the paper reports.
#
# **Decoder.** A Bernoulli decoder (a flow makes no sense for binary pixels); the sample $x_\xi$ in the second term
# is a Bernoulli draw with the straight-through gradient of its mean, so the discriminators always compare binary
# images with binary images (a discriminator shown data in $\{0,1\}$ against generated grey levels would separate
# them by that alone).
#
# **What is reported.** The paper's MNIST "NLL" is the *negative ELBO* of the plain VAE bound (an upper bound on
# $-\log p(x)$; here with the flow's exact density, one Monte Carlo sample per image), so that is the row compared with
# its 82.51 / 81.14 nats. Beside it: $\log p(x)$ by importance sampling with the flow as proposal (IWAE-$k$) and by
# AIS, the reconstruction error, and the MNIST-domain sample scores of `lib.domain_classifier`.
# Caveat: the paper feeds grey levels as Bernoulli probabilities; we use dynamic binarisation, as for every MNIST
# number in this repository, so absolute nats are comparable with the binarised-MNIST literature rather than exactly
# with the paper's setting.

# %% [markdown]
# **Baseline.** Table 1 of the paper sets AS-VAE against a VAE whose encoder is a planar normalizing flow (Rezende &
# Mohamed 2015: 80 layers, negative ELBO 85.1 nats, a number the paper quotes rather than measures). We train that
# baseline here (`flow_vae`, `lib.vae.FlowVAE`): the same flow encoder and Bernoulli decoder, trained by the plain ELBO
# with the KL term $\log q_\phi(z\mid x) - \log p(z)$ taken at the flow's own sample (its log-density is exact), and
# no discriminator. Method and baseline share the networks (same seed, hence the same initial weights), the data and
# batch sampler (training images, batch size, dynamic binarisation), the number of iterations, the learning rate (the
# AS-VAE primal's, `lr_primal`) and the estimators below.
#
# **Profiles, and what differs from the paper.** `quick` (the defaults below) is a smoke test. `standard`
# (`paper_reproductions/params/21_asvae_mnist.standard.yaml`) tests the Table 1 comparison on a 2-core CPU: the same
# networks as quick (784-256-256 MLPs, 8 planar layers, $z \in \mathbb R^{32}$) for 20k iterations (40 epochs) per model,
# two seeds. It differs from the paper in the flow length (8 layers, not 80), the width, the budget (a fixed 40 epochs,
# no early stopping), the data (dynamic binarisation, not grey levels as Bernoulli means) and the optimiser (Adam
# $3\cdot10^{-4}$ / $6\cdot10^{-4}$ with $\beta_1 = 0.5$ for every model, no learning-rate sweep; a validation check found
# $\beta_1 = 0.5$ and $0.9$ equal for the flow VAE, `python -m paper_reproductions.validation`). `full` has the paper's
# 80 layers and $10^{-4}$, on a GPU. The claim compares method and baseline at the same budget, not absolute nats.

# %% tags=["parameters"]
PROFILE = "auto"
SEED = 0
DEVICE = "auto"
RUN_DIR = ""
STEPS = 0
MODELS = "asvae,asvae_r,asvae_g,flow_vae"
# The quick profile (a smoke test): 784-256-256 MLPs, 8 planar layers, 1k iterations per model: under a minute each on
# one CPU thread (AS-VAE, which inverts the flow, about 1.5 min). The full profile's settings (the paper's flow length) are in paper_reproductions/params/21_asvae_mnist.full.yaml.
SETTINGS = {"arch": "mlp", "hidden": (256, 256), "adversary_hidden": (256, 256), "discriminator_steps": 1, "n_flows": 8,
            "z_dim": 32, "steps": 1_000, "batch_size": 100, "lr_primal": 3e-4, "lr_discriminators": 6e-4,
            "n_test_elbo": 2_000, "n_test_iwae": 500, "k_iwae": 200, "n_test_ais": 100, "ais_steps": 50, "ais_chains": 5,
            "n_score": 2_000}

# %%
import matplotlib.pyplot as plt
import torch

from lib.ais import evaluate_ais
from lib.data import BatchSampler, fixed_binarization, load_mnist
from lib.evaluate import evaluate_elbo, evaluate_log_px, mean_sem
from lib import registry
from lib.plotting import TWO_COLUMN, samples_and_reconstructions, savefig
from lib.notebook import open_notebook
from lib.runs import seed_everything
from lib.domain_classifier import DomainScores, bernoulli_prior_samples, mnist_classifier
from lib.train import fit

nb = open_notebook(globals(), "21_asvae_mnist")
profile, device = nb.profile, nb.device
if STEPS:
    SETTINGS["steps"] = int(STEPS)
model_names = [m.strip() for m in MODELS.split(",") if m.strip()]
cfg = dict(**SETTINGS, models=model_names, betas=(0.5, 0.999), binarization="dynamic",
           split="50k/10k/10k, test set binarised once with seed 0")
run_dir = nb.start(config=cfg)

mnist = load_mnist()
train_x = mnist["train"].images.to(device)
x_test = fixed_binarization(mnist["test"].images, seed=0).to(device)
x_elbo, x_iwae, x_ais = x_test[: cfg["n_test_elbo"]], x_test[: cfg["n_test_iwae"]], x_test[: cfg["n_test_ais"]]
LABEL = {"asvae": "AS-VAE", "asvae_r": "AS-VAE-r", "asvae_g": "AS-VAE-g", "flow_vae": "flow VAE"}
LR = {"primal": cfg["lr_primal"], "discriminators": cfg["lr_discriminators"]}  # per player; the flow VAE has only primal

# %% [markdown]
# ## Training
# All three variants start from the same seed and the same networks; each iteration takes one step of the
# discriminators, then one primal step (`lib.train.fit`). AS-VAE-r trains only $f_{\psi_1}$ and AS-VAE-g only
# $f_{\psi_2}$ (the other discriminator receives no gradient). The flow VAE, trained last, starts from the same
# encoder and decoder weights and takes one ELBO step per iteration at the primal learning rate. Before training we
# record the test $\log p(x)$.

# %%
def build(name: str):
    return registry.build(name, x_shape=(1, 28, 28), z_dim=cfg["z_dim"], arch=cfg["arch"], hidden=cfg["hidden"],
                          adversary_hidden=cfg["adversary_hidden"], adversary_steps=cfg["discriminator_steps"],
                          n_flows=cfg["n_flows"]).to(device)


@torch.no_grad()
def reconstruction_error(model, x: torch.Tensor) -> dict:
    """Per-image -log p(x | z), z ~ q(z|x) (nats) and the squared error of the decoder mean (pixels, summed)."""
    model.eval()
    z = model.sample_posterior(x)
    nll = -model.decoder.log_prob(x, z)
    se = (torch.sigmoid(model.decoder(z)) - x).pow(2).flatten(1).sum(1)
    (m, s), (m2, s2) = mean_sem(nll.cpu()), mean_sem(se.cpu())
    return {"rec_nll": {"value": m, "sem": s, "n": x.shape[0], "implementation": "-log p(x|z), one z ~ q(z|x)"},
            "rec_sse": {"value": m2, "sem": s2, "n": x.shape[0],
                        "implementation": "sum over pixels of (decoder mean - x)^2, one z ~ q(z|x)"}}


results, histories, models = {}, {}, {}
for name in model_names:
    seed_everything(SEED)
    model = build(name)
    untrained = nb.cached(f"{name}_untrained_log_px",
                          lambda: evaluate_log_px(model, x_iwae[:200], k=cfg["k_iwae"])["value"])
    histories[name] = fit(model, BatchSampler(train_x, cfg["batch_size"]), steps=cfg["steps"],
                          lr={p: LR[p] for p in model.players}, betas=cfg["betas"],
                          run_dir=run_dir / name, log_every=max(cfg["steps"] // 40, 1),
                          ckpt_every=max(cfg["steps"] // 10, 1), desc=name)
    elbo = nb.cached(f"{name}_elbo", lambda: evaluate_elbo(model, x_elbo))
    log_px = nb.cached(f"{name}_log_px", lambda: evaluate_log_px(model, x_iwae, k=cfg["k_iwae"]))
    ais = nb.cached(f"{name}_ais", lambda: evaluate_ais(model, x_ais, n_steps=cfg["ais_steps"],
                                                        n_chains=cfg["ais_chains"],
                                                        generator=torch.Generator(device=device).manual_seed(SEED)))
    results[name] = dict(elbo=elbo, log_px=log_px, ais=ais, untrained_log_px=untrained,
                         **nb.cached(f"{name}_reconstruction", lambda: reconstruction_error(model, x_elbo)))
    models[name] = model
    print(f"{LABEL[name]:>9}: test -ELBO {-elbo['value']:7.2f} ± {elbo['sem']:.2f} (rec {-elbo['rec']:.1f}, KL {elbo['kl']:.1f})"
          f" | IWAE-{cfg['k_iwae']} {log_px['value']:8.2f} ± {log_px['sem']:.2f}"
          f" | AIS-{cfg['ais_steps']} {ais['value']:8.2f} ± {ais['sem']:.2f} | untrained {untrained:.1f}")

# %% [markdown]
# ## Checks
# * Every trained variant's test $\log p(x)$ is far above the untrained network's (by at least 100 nats).
# * IWAE-$k$ with the flow as proposal can only raise the bound: $\log p(x) \ge$ ELBO up to Monte Carlo noise.
# * The paper's ordering of reconstructions: AS-VAE-r, which trains on $\mathcal L_x$ (reconstruction) alone,
#   reconstructs test images better than AS-VAE-g, which never sees a reconstruction term. Where the full
#   AS-VAE falls, and which variant draws the best samples, is printed and recorded, not asserted: at
#   quick-profile scale it need not match the paper.

# %%
for name, r in results.items():
    assert r["log_px"]["value"] > r["untrained_log_px"] + 100, (name, r["log_px"]["value"], r["untrained_log_px"])
    slack = 3 * (r["log_px"]["sem"] ** 2 + r["elbo"]["sem"] ** 2) ** 0.5
    assert r["log_px"]["value"] >= r["elbo"]["value"] - slack, (name, r["log_px"]["value"], r["elbo"]["value"])
if {"asvae_r", "asvae_g"} <= set(results):
    assert results["asvae_r"]["rec_nll"]["value"] < results["asvae_g"]["rec_nll"]["value"], "AS-VAE-r should reconstruct best"

# %% [markdown]
# ## Samples and reconstructions (the paper's Fig. 1)

# %%
g = torch.Generator(device=device).manual_seed(SEED)
fig = samples_and_reconstructions(
    models, x_test[:32], labels=LABEL, sample_caption="samples (means)",
    sample=lambda name, model: torch.sigmoid(model.decoder(torch.randn(64, model.z_dim, generator=g, device=device))),
    reconstruct=lambda name, model, x: torch.sigmoid(model.decoder(model.sample_posterior(x))),
    title=f"AS-VAE variants on MNIST ({profile} profile, seed {SEED}, {cfg['steps']} iterations each)")
savefig(fig, "21_asvae_mnist_samples")
plt.show()

# %% [markdown]
# ## MNIST-domain sample scores
# Fréchet distance in the features of a small MNIST classifier and its Inception-style score (MNIST-specific,
# not FID/IS; `lib.domain_classifier`), on Bernoulli samples $x \sim p_\theta(x\mid z)$, with a disjoint set of test
# images as the reference (the distance's floor and the score's ceiling at this sample size).

# %%
n = cfg["n_score"]
domain = DomainScores(x_test, n, mnist_classifier(seed=0, device=device))  # reference x_test[:n]; held out x_test[n: 2n]
g = torch.Generator(device=device).manual_seed(SEED)
scores = nb.cached("domain_scores",
                   lambda: {name: domain.score(bernoulli_prior_samples(model.decoder, model.z_dim, n, generator=g))
                            for name, model in models.items()})
held = domain.heldout
print(f"{'held-out test':>14}: MNIST-FD {held['mnist_fd']['value']:8.3f}  MNIST-IS {held['mnist_is']['value']:.2f}")
for name, sc in scores.items():
    print(f"{LABEL[name]:>14}: MNIST-FD {sc['mnist_fd']['value']:8.3f}  MNIST-IS {sc['mnist_is']['value']:.2f}")
    assert sc["mnist_fd"]["value"] > held["mnist_fd"]["value"], name

# %% [markdown]
# ## The paper's ordering, as measured

# %%
import pandas as pd

table = pd.DataFrame({LABEL[k]: {"-ELBO (nats)": -r["elbo"]["value"], "IWAE log p(x)": r["log_px"]["value"],
                                  f"AIS-{cfg['ais_steps']} log p(x)": r["ais"]["value"],
                                  "reconstruction -log p(x|z)": r["rec_nll"]["value"], "reconstruction SSE": r["rec_sse"]["value"],
                                  "MNIST-FD (lower better)": scores[k]["mnist_fd"]["value"],
                                  "MNIST-IS (higher better)": scores[k]["mnist_is"]["value"]}
                      for k, r in results.items()}).T
print(table.round(2).to_string())
variants = [k for k in ("asvae", "asvae_r", "asvae_g") if k in results]  # the ordering among AS-VAE's variants
if len(variants) == 3:
    rec = {k: results[k]["rec_nll"]["value"] for k in variants}
    fd = {k: scores[k]["mnist_fd"]["value"] for k in variants}
    print("best reconstruction:", LABEL[min(rec, key=rec.get)], "| best samples (MNIST-FD):", LABEL[min(fd, key=fd.get)],
          "| full AS-VAE between r and g in reconstruction:", min(rec["asvae_r"], rec["asvae_g"]) <= rec["asvae"] <= max(rec["asvae_r"], rec["asvae_g"]))
if "flow_vae" in results:  # Table 1's comparison (paper: 85.1 - 82.51 = 2.6 and 85.1 - 81.14 = 4.0 nats); not asserted
    for k in ("asvae", "asvae_r"):
        if k in results:
            gap = results[k]["elbo"]["value"] - results["flow_vae"]["elbo"]["value"]
            print(f"-ELBO, flow VAE minus {LABEL[k]}: {gap:+.2f} nats")

# %%
# Two panels, one quantity each: the decoder's log-likelihood of the data (AS-VAE, AS-VAE-r) and the encoder's
# log-density of the prior code given the generated image (AS-VAE, AS-VAE-g), batch means as logged by `fit`.
fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN, 2.6), layout="constrained")
panels = {"primal/rec": (r"$\log p_\theta(x\mid z)$, $z \sim q_\phi(z\mid x)$ [nats]", "data reconstruction"),
          "primal/log_q_gen": (r"$\log q_\phi(z\mid x_\xi)$, $x_\xi \sim p_\theta(x\mid z)$ [nats]",
                               "code reconstruction, $z \sim p(z)$")}
for ax, (key, (ylabel, title)) in zip(axes, panels.items()):
    for i, (n, h) in enumerate(histories.items()):
        rows = [r for r in h if key in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], color=f"C{i}", label=LABEL[n])
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    ax.legend(loc="lower right")
fig.suptitle(f"AS-VAE training on MNIST ({profile} profile, seed {SEED}, {cfg['steps']} iterations): batch means")
savefig(fig, "21_asvae_mnist_curves")
plt.show()

# %%
metrics = {}
for name, r in results.items():
    metrics[f"{name}_neg_elbo"] = {"value": -r["elbo"]["value"], "sem": r["elbo"]["sem"], "n": r["elbo"]["n"],
                                   "implementation": "negative " + r["elbo"]["implementation"], "split": "test"}
    metrics[f"{name}_log_px"] = {**{k: v for k, v in r["log_px"].items() if k != "log_px"}, "split": "test"}
    metrics[f"{name}_ais_log_px"] = {**{k: v for k, v in r["ais"].items() if k in ("value", "sem", "n", "implementation")},
                                     "split": "test"}
    for m in ("rec_nll", "rec_sse"):
        metrics[f"{name}_{m}"] = {**r[m], "split": "test"}
    for m in ("mnist_fd", "mnist_is"):
        metrics[f"{name}_{m}"] = {**scores[name][m], "split": "test (binarised, seed 0)"}
metrics.update(domain.heldout_metrics())
nb.finish(metrics)
for k, v in metrics.items():
    print(f"{k:>24}: {v['value']:9.2f}")

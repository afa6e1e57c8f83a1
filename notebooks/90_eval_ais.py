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
# # 90 · Evaluating $\log p(x)$: annealed importance sampling, checked three ways
#
# AVB reports test log-likelihoods of MNIST models with **annealed importance sampling** (AIS; Neal 2001,
# as used for decoder-based models by Wu et al. 2017). This notebook derives the estimator and checks
# `lib.ais` against things it cannot fake:
#
# 1. a **linear-Gaussian** decoder, whose $\log p(x)$ is known in closed form;
# 2. **bidirectional Monte Carlo** (BDMC, Grosse et al. 2015) on data *simulated* from a trained MNIST decoder,
#    where forward AIS bounds $\log p(x)$ from below, reverse AIS from above, and the gap must shrink;
# 3. the **IWAE bound** on real test images of the same trained model: both are stochastic lower bounds, and
#    a long AIS chain should be at least as tight as IWAE-$k$.
#
# ## The estimator
# Let $r(z\mid x)$ be a normalised start distribution (the prior, or a Gaussian fitted to posterior samples),
# and $f_1(z) = p(z)\,p(x\mid z)$, whose normaliser is $p(x)$. The geometric path
#
# $$f_t(z) = r(z\mid x)^{1-\beta_t}\,\bigl[p(z)\,p(x\mid z)\bigr]^{\beta_t},\qquad 0=\beta_0<\beta_1<\dots<\beta_T=1,$$
#
# moves from $r$ to the unnormalised posterior. Draw $z_0\sim r$, and $z_t$ from a Markov kernel that
# leaves $f_t$ invariant (here Hamiltonian Monte Carlo with 10 leapfrog steps, step size adapted towards
# 0.65 acceptance). The weight
#
# $$\log w = \sum_{t=1}^{T} (\beta_t-\beta_{t-1})\,\bigl[\log p(z_{t-1}) + \log p(x\mid z_{t-1}) - \log r(z_{t-1}\mid x)\bigr]$$
#
# is unbiased, $\mathbb E\,w = p(x)$, so by Jensen $\mathbb E \log \frac1K\sum_k w_k \le \log p(x)$: AIS is a
# **stochastic lower bound**, tight as $T\to\infty$. $T=1$ is plain importance sampling with proposal $r$ (IWAE-$K$).
#
# **Reverse AIS.** If $z$ is an *exact* posterior sample for $x$ (true when we simulate $z\sim p(z)$, $x\sim p(x\mid z)$),
# running the same chain from $\beta=1$ down to $0$ gives $\mathbb E\,w_{\rm rev} = 1/p(x)$ and hence a stochastic
# **upper** bound $-\log\frac1K\sum_k w_{{\rm rev},k}$. Forward and reverse together sandwich the truth on simulated
# data; the width of the sandwich bounds the error of both.

# %% tags=["parameters"]
PROFILE = "auto"
SEED = 0
DEVICE = "auto"
RUN_DIR = ""
# The quick profile: a minute or two on a laptop CPU. The full profile's settings (the paper's AIS protocol, 1000 steps
# and 5 chains, and a converged decoder, on a GPU) are in paper_reproductions/params/90_eval_ais.full.yaml.
SETTINGS = {"lg_images": 50, "lg_chains": 20, "lg_steps": [1, 10, 100, 1000],
            "vae_steps": 1_500, "vae_hidden": (256, 256), "z_dim": 8, "batch_size": 100, "lr": 1e-3,
            "bdmc_images": 50, "bdmc_chains": 5, "bdmc_steps": [10, 30, 100],
            "test_images": 100, "iwae_k": [1, 10, 100, 1000], "ais_steps": [10, 100, 300], "ais_chains": 5}

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from lib.ais import (bdmc, evaluate_ais, linear_gaussian_log_likelihood, linear_gaussian_log_px, ais_log_px,
                     simulate, simulate_linear_gaussian)
from lib.data import BatchSampler, fixed_binarization, load_mnist
from lib.evaluate import bits_per_dim, evaluate_elbo, iwae_log_px, mean_sem
from lib import registry
from lib.plotting import ONE_COLUMN, TWO_COLUMN, savefig
from lib.notebook import open_notebook
from lib.runs import seed_everything
from lib.train import fit

nb = open_notebook(globals(), "90_eval_ais")
profile, device = nb.profile, nb.device
cfg = dict(**SETTINGS, lg=dict(x_dim=10, z_dim=3, s=0.5, w_scale=0.5), n_leapfrog=10, target_accept=0.65,
           start="prior (linear-Gaussian); encoder's Gaussian (MNIST)")
run_dir = nb.start(config=cfg)
gen = lambda s: torch.Generator(device=device).manual_seed(SEED * 1000 + s)  # noqa: E731
metrics = {}

# %% [markdown]
# ## 1 · Linear-Gaussian decoder: AIS against the closed form
# With $p(z)=\mathcal N(0,I_3)$ and $p(x\mid z)=\mathcal N(Wz+b,\,s^2 I_{10})$ the marginal is
# $p(x)=\mathcal N(x;\,b,\,WW^\top + s^2 I)$ exactly. We draw test points from the model and run AIS from the
# prior with an increasing number of steps $T$. The posterior is narrower than the prior (posterior standard
# deviations 0.26–0.50 against 1), so importance sampling from the prior ($T=1$) is poor and annealing must
# close the gap. **Check:** at the largest $T$ the relative error of the mean estimate is below 0.5 %, and the
# error shrinks with $T$ (to a tenth of plain importance sampling's, which fails the 0.5 % check).
# The error bars are Monte Carlo standard errors over the test points; at a few hundred steps and beyond the
# remaining error is noise of that size, not bias.

# %%
lg = cfg["lg"]
g = gen(0)
W = lg["w_scale"] * torch.randn(lg["x_dim"], lg["z_dim"], generator=g, device=device)
b = torch.randn(lg["x_dim"], generator=g, device=device)
x_lg, _ = simulate_linear_gaussian(W, b, lg["s"], cfg["lg_images"], generator=g)
exact_lg = linear_gaussian_log_px(x_lg, W, b, lg["s"])
ll_lg = linear_gaussian_log_likelihood(W, b, lg["s"])
lg_rows = []
for T in cfg["lg_steps"]:
    out = nb.cached(f"linear_gaussian_ais_T{T}", lambda: ais_log_px(
        ll_lg, x_lg, lg["z_dim"], n_steps=T, n_chains=cfg["lg_chains"], n_leapfrog=cfg["n_leapfrog"],
        target_accept=cfg["target_accept"], generator=gen(T)))
    err = out["log_px"] - exact_lg
    rel = float(err.mean() / exact_lg.mean().abs())
    lg_rows.append(dict(T=T, mean=out["mean"], exact=float(exact_lg.mean()), err=float(err.mean()),
                        err_sem=mean_sem(err.cpu())[1], rel=rel, accept=out["accept_rate"]))
    print(f"T={T:>5}: AIS {out['mean']:9.4f}  exact {float(exact_lg.mean()):9.4f}  error {float(err.mean()):+8.4f} nats "
          f"({100 * rel:+.3f} %)  acceptance {out['accept_rate']:.2f}")

# %%
rel_last = abs(lg_rows[-1]["rel"])
assert rel_last < 0.005, f"linear-Gaussian: relative error {rel_last:.4%} at T={lg_rows[-1]['T']} (needs < 0.5 %)"
assert abs(lg_rows[-1]["err"]) < abs(lg_rows[0]["err"]) / 10, "annealing should shrink the error of plain IS"
# negative control: the same check fails for plain importance sampling from the prior (T = 1)
assert abs(lg_rows[0]["rel"]) > 0.005, "T = 1 should be visibly biased: is the check able to fail?"
metrics["linear_gaussian_rel_error"] = {"value": lg_rows[-1]["rel"], "n": cfg["lg_images"],
                                        "implementation": f"AIS ({lg_rows[-1]['T']} steps, {cfg['lg_chains']} chains, prior start) "
                                                          "vs closed-form log N(x; b, WW^T + s^2 I), relative error of the mean"}

# %%
fig, ax = plt.subplots(figsize=(ONE_COLUMN, 2.8), layout="constrained")
Ts = [r["T"] for r in lg_rows]
ax.errorbar(Ts, [abs(r["err"]) for r in lg_rows], yerr=[2 * r["err_sem"] for r in lg_rows], marker="o", capsize=3,
            label="|mean AIS − exact| (± 2 sem)")
ax.axhline(0.005 * abs(float(exact_lg.mean())), color="k", ls="--", lw=1, label=r"0.5 % of $|\log p(x)|$")
ax.set(xscale="log", yscale="log", xlabel="AIS steps $T$ ($T = 1$: IS from the prior)",
       ylabel=r"error of mean $\log p(x)$ [nats]",
       title=f"Linear-Gaussian decoder: AIS → exact\n({cfg['lg_images']} points, {cfg['lg_chains']} chains, "
             f"{profile} profile, seed {SEED})")
ax.legend(loc="upper right")
savefig(fig, "90_ais_linear_gaussian")
plt.show()

# %% [markdown]
# ## 2 · A trained MNIST decoder
# The remaining checks need a realistic decoder: sharp posteriors in an 8-dimensional latent space. We train a
# small VAE (MLP encoder and Bernoulli decoder) on dynamically binarised MNIST.

# %%
mnist = load_mnist()
x_test = fixed_binarization(mnist["test"].images, seed=0).to(device)[: cfg["test_images"]]
seed_everything(SEED)
vae = registry.build("vae", x_shape=(1, 28, 28), z_dim=cfg["z_dim"], arch="mlp", hidden=cfg["vae_hidden"]).to(device)
hist = fit(vae, BatchSampler(mnist["train"].images.to(device), cfg["batch_size"]), steps=cfg["vae_steps"],
           lr={"model": cfg["lr"]}, run_dir=run_dir / "vae", log_every=max(cfg["vae_steps"] // 20, 1),
           ckpt_every=cfg["vae_steps"], desc="VAE")
vae.eval()
elbo = nb.cached("vae_elbo", lambda: evaluate_elbo(vae, x_test))
print(f"test ELBO {elbo['value']:.2f} ± {elbo['sem']:.2f} nats ({bits_per_dim(elbo['value'], 784):.4f} bits/dim)")

# %% [markdown]
# ## 3 · BDMC on simulated data: forward AIS ≤ log p(x) ≤ reverse AIS
# We draw $z\sim p(z)$, $x\sim p_\theta(x\mid z)$ from the trained decoder; each $z$ is an exact posterior sample
# for its $x$. Forward AIS from the prior and reverse AIS from $z$ share the schedule and the HMC kernel.
# **Checks:** reverse ≥ forward on average at every $T$ (the sandwich; its width is an upper bound on the
# error of either side), and the gap shrinks as $T$ grows, to a small fraction of the short chains' gap.

# %%
x_sim, z_sim = simulate(vae.decoder, cfg["bdmc_images"], cfg["z_dim"], generator=gen(1))
bdmc_rows = []
for T in cfg["bdmc_steps"]:
    t0 = time.perf_counter()
    out = nb.cached(f"bdmc_T{T}", lambda: bdmc(vae.decoder.log_prob, x_sim, z_sim, cfg["z_dim"], n_steps=T,
                                              n_chains=cfg["bdmc_chains"], n_leapfrog=cfg["n_leapfrog"],
                                              target_accept=cfg["target_accept"], generator=gen(100 + T)))
    gap_mean, gap_sem = mean_sem(out["gap"].cpu())
    bdmc_rows.append(dict(T=T, forward=out["forward"]["mean"], reverse=out["reverse"]["mean"], gap=gap_mean,
                          gap_sem=gap_sem, seconds=time.perf_counter() - t0))
    print(f"T={T:>5}: forward {out['forward']['mean']:9.3f}  reverse {out['reverse']['mean']:9.3f}  "
          f"gap {gap_mean:7.3f} ± {gap_sem:.3f} nats  ({time.perf_counter() - t0:.1f} s)")
    metrics[f"bdmc_gap_T{T}"] = {"value": gap_mean, "sem": gap_sem, "n": cfg["bdmc_images"],
                                 "implementation": f"BDMC: reverse − forward AIS, {T} steps, {cfg['bdmc_chains']} chains, "
                                                   "prior start, data simulated from the trained decoder"}

# %%
for r in bdmc_rows:
    assert r["gap"] > -3 * r["gap_sem"], f"reverse AIS below forward AIS at T={r['T']}: {r}"
assert bdmc_rows[-1]["gap"] < bdmc_rows[0]["gap"] / 4, f"BDMC gap does not shrink: {bdmc_rows}"
# negative control: with the *wrong* generating latents (shuffled), reverse AIS is no upper bound and can fall
# below forward AIS: the sandwich relies on z being an exact posterior sample.
perm = torch.roll(torch.arange(cfg["bdmc_images"], device=device), 1)
wrong = nb.cached("bdmc_shuffled_z", lambda: bdmc(vae.decoder.log_prob, x_sim, z_sim[perm], cfg["z_dim"],
                                                  n_steps=cfg["bdmc_steps"][0], n_chains=cfg["bdmc_chains"],
                                                  generator=gen(7)))
print(f"negative control (shuffled z, T={cfg['bdmc_steps'][0]}): gap {wrong['gap_mean']:.1f} nats "
      f"against {bdmc_rows[0]['gap']:.2f} with the true z")
assert wrong["gap_mean"] < bdmc_rows[0]["gap"] - 5

# %%
fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN, 2.6), layout="constrained")
Ts = [r["T"] for r in bdmc_rows]
axes[0].plot(Ts, [r["forward"] for r in bdmc_rows], "o-", label="forward AIS (lower bound)")
axes[0].plot(Ts, [r["reverse"] for r in bdmc_rows], "s-", label="reverse AIS (upper bound)")
axes[0].set(xscale="log", xlabel="AIS steps $T$", ylabel=r"mean $\log p(x)$ [nats]", title="BDMC sandwich on simulated MNIST")
axes[0].legend(loc="lower right")
axes[1].errorbar(Ts, [r["gap"] for r in bdmc_rows], yerr=[2 * r["gap_sem"] for r in bdmc_rows], marker="o", capsize=3)
axes[1].set(xscale="log", yscale="log", xlabel="AIS steps $T$", ylabel="reverse − forward [nats] (± 2 sem)",
            title=f"BDMC gap ({cfg['bdmc_images']} simulated images, {cfg['bdmc_chains']} chains)")
fig.suptitle(f"VAE decoder trained {cfg['vae_steps']} iterations ({profile} profile, seed {SEED})")
savefig(fig, "90_ais_bdmc")
plt.show()

# %% [markdown]
# ## 4 · IWAE against AIS on real test images
# Both are stochastic lower bounds on $\log p_\theta(x)$. IWAE-$k$ with the encoder as proposal tightens with $k$
# ($k=1$ is the ELBO); AIS from the encoder's Gaussian tightens with $T$. **Check:** on the same images, the
# longest AIS chain is at least as high as IWAE with the largest $k$, up to Monte Carlo noise (three standard
# errors of the per-image difference). The paper's AIS numbers can therefore be compared with ours only when
# our estimator is AIS too.

# %%
iwae_rows = []
for k in cfg["iwae_k"]:
    torch.manual_seed(SEED)
    lp = nb.cached(f"vae_iwae_k{k}", lambda: torch.cat([iwae_log_px(vae, x_test[i:i + 100], k=k).cpu()
                                                        for i in range(0, x_test.shape[0], 100)]))
    iwae_rows.append(dict(k=k, values=lp, mean=mean_sem(lp)[0], sem=mean_sem(lp)[1]))
    print(f"IWAE-{k:<6}: {iwae_rows[-1]['mean']:9.3f} ± {iwae_rows[-1]['sem']:.3f}")
ais_rows = []
for T in cfg["ais_steps"]:
    def timed_ais(T=T):  # the seconds are a metric: stored with the result
        t0 = time.perf_counter()
        out = evaluate_ais(vae, x_test, n_steps=T, n_chains=cfg["ais_chains"], n_leapfrog=cfg["n_leapfrog"],
                           target_accept=cfg["target_accept"], generator=gen(200 + T))
        return out, time.perf_counter() - t0

    out, secs = nb.cached(f"vae_ais_T{T}", timed_ais)
    ais_rows.append(dict(T=T, values=out["log_px"], mean=out["value"], sem=out["sem"], seconds=secs, out=out))
    print(f"AIS T={T:<5}: {out['value']:9.3f} ± {out['sem']:.3f}  acceptance {out['accept_rate']:.2f}  ({secs:.1f} s, "
          f"{1000 * secs / x_test.shape[0]:.0f} s per 1000 images)")

# %%
diff = ais_rows[-1]["values"] - iwae_rows[-1]["values"]
d_mean, d_sem = mean_sem(diff)
print(f"AIS-{ais_rows[-1]['T']} − IWAE-{iwae_rows[-1]['k']}: {d_mean:+.3f} ± {d_sem:.3f} nats per image")
assert d_mean > -3 * d_sem, "a long AIS chain should not be looser than IWAE"
assert iwae_rows[-1]["mean"] > iwae_rows[0]["mean"], "IWAE-k must tighten the ELBO (k = 1)"
metrics["vae_iwae_log_px"] = {"value": iwae_rows[-1]["mean"], "sem": iwae_rows[-1]["sem"], "n": cfg["test_images"],
                              "split": "test", "implementation": f"importance sampling (IWAE-{iwae_rows[-1]['k']}), encoder proposal"}
metrics["vae_ais_log_px"] = {"value": ais_rows[-1]["mean"], "sem": ais_rows[-1]["sem"], "n": cfg["test_images"],
                             "split": "test", "implementation": ais_rows[-1]["out"]["implementation"]}
metrics["ais_minus_iwae"] = {"value": d_mean, "sem": d_sem, "n": cfg["test_images"], "split": "test",
                             "implementation": f"per-image AIS-{ais_rows[-1]['T']} − IWAE-{iwae_rows[-1]['k']}"}
metrics["ais_seconds_per_1000_images"] = {
    "value": 1000 * ais_rows[-1]["seconds"] / cfg["test_images"],
    "implementation": f"wall time of AIS with {ais_rows[-1]['T']} steps, {cfg['ais_chains']} chains, {cfg['n_leapfrog']} "
                      f"leapfrog steps, 8-{'-'.join(map(str, cfg['vae_hidden']))}-784 MLP decoder, batch 100, {device}"}

# %%
# Paired per-image differences against the tightest IWAE (IWAE-k_max): the spread of log p(x) across images
# (several nats) is common to both estimators and cancels, leaving the 1-3 nat gap the check is about.
base = iwae_rows[-1]["values"].cpu()
k_max = iwae_rows[-1]["k"]
fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN, 2.8), layout="constrained", gridspec_kw={"width_ratios": [1.4, 1]})
ax = axes[0]
for rows, key, marker, label in ((iwae_rows, "k", "o", f"IWAE-$k$ − IWAE-{k_max} (x-axis: $k$ samples)"),
                                 (ais_rows, "T", "s", f"AIS-$T$ − IWAE-{k_max} (x-axis: $T$ steps, {cfg['ais_chains']} chains)")):
    paired = [mean_sem(r["values"].cpu() - base) for r in rows]
    ax.errorbar([r[key] for r in rows], [m for m, _ in paired], yerr=[2 * se for _, se in paired], marker=marker,
                capsize=3, label=label)
ax.axhline(0, color="k", lw=0.8)
ax.set(xscale="log", xlabel="$k$ (IWAE) or $T$ (AIS)", ylabel=f"$\\log p(x)$ − IWAE-{k_max} [nats]\n(per-image mean ± 2 sem)",
       title="Mean paired difference per estimator")
ax.legend(loc="lower right")
ax = axes[1]
ax.hist(diff.cpu().numpy(), bins=30, color="C1", alpha=0.7)
ax.axvline(0, color="k", lw=0.8)
ax.axvline(d_mean, color="C1", ls="--", label=f"mean {d_mean:+.2f} ± {d_sem:.2f}")
ax.set(xlabel=f"AIS-{ais_rows[-1]['T']} − IWAE-{k_max} per image [nats]", ylabel="images",
       title="Per-image difference, longest chains")
ax.legend(loc="upper right")
fig.suptitle(f"IWAE ≤ AIS on {cfg['test_images']} MNIST test images: VAE trained {cfg['vae_steps']} iterations "
             f"({profile} profile, seed {SEED})")
savefig(fig, "90_ais_vs_iwae")
plt.show()

# %%
nb.finish(metrics)
for k, v in metrics.items():
    print(f"{k:>30}: {v['value']:10.4f}")

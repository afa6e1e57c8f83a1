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
# # 40 — The AVAE objective: why pixel MSE blurs, the latent reconstruction loss $\mathcal L_Z$, ELBO surgery
#
# The Adversarial Variational Auto Encoder (Plumerault, Le Borgne & Hudelot, ICPR 2020, arXiv 2012.11551; we have the
# slides, docs/papers.md §4) keeps a VAE whose encoder has a **data-independent** standard deviation $\sigma_e$ and adds a
# generator $G(z,\xi)$ (extra noise $\xi$) trained against a discriminator $C$ *and* with a latent reconstruction loss
#
# $$
# \mathcal L_Z(\hat x) = \frac12\Big\|\frac{\mu_e(\hat x) - \sqrt{1-\sigma_e^2}\,z}{\sigma_e}\Big\|^2
# \qquad\text{(slides, Eq. 4; }\texttt{lib.avae.latent\_reconstruction\_loss}\text{, the repository's default }\texttt{variant="slides"}\text{)}
# $$
#
# instead of the pixel MSE. This notebook checks the three claims behind it on toys with closed forms:
#
# 1. **pixel MSE blurs**: the MSE-optimal decoder is $\mathbb E[x\mid z]$; on a toy where the code does not determine one
#    coordinate of $x$ (bimodal given $z$) a trained MSE decoder sits at the midpoint, while a small GAN generator trained
#    with $\mathcal L_Z$ recovers both modes *and* stays faithful to the code;
# 2. **$\mathcal L_Z$ is compatible with the GAN optimum**: if the aggregated posterior equals the prior,
#    $\mathrm{Var}\,\mu_e(x) = 1 - \sigma_e^2$ per dimension and $\sqrt{1-\sigma_e^2}\,z$ has the law of $\mu_e(x)$ (linear-Gaussian
#    model: closed form and Monte Carlo); the $\mathcal L_Z$ optimum is exactly this, the pixel-MSE optimum and the released
#    code's variant of $\mathcal L_Z$ (`variant="code"`) are not;
# 3. **ELBO surgery** (the slides' Eq. 1): $\mathbb E_x\mathrm{KL}(q(z\mid x)\|p(z)) = I_q(x;z) + \mathrm{KL}(q(z)\|p(z))$, exactly on a
#    discrete toy, and what it means for an encoder with data-independent $\sigma_e$: the code carries exactly
#    $-\sum_j\log\sigma_{e,j}$ nats.
#
# **Which $\mathcal L_Z$.** The repository implements the slides' form by default. The authors' released code differs
# (docs/papers.md §4 [C]: softmax-normalised precision weights $w = \mathrm{softmax}(-2\log\sigma_e)$, no $\sqrt{1-\sigma_e^2}$,
# batch-summed); it is available as `variant="code"`, implemented as described in our reference notes, not re-read from the
# code. Section 2 compares the two optima on one toy.

# %% tags=["parameters"]
PROFILE = "auto"
SEED = 0
DEVICE = "cpu"
RUN_DIR = ""
# quick profile's settings; the full profile's are in paper_reproductions/params/40_avae_objective.full.yaml (the GAN and
# the MSE decoder are trained identically in both profiles, settings checked for seeds 0, 1, 2; the full profile only
# evaluates on more samples)
SETTINGS = {"gan_steps": 3000, "gan_batch": 256, "gan_lr": 5e-4, "gan_hidden": [64, 64], "xi_dim": 1,
            "critic_steps": 1, "mse_steps": 1500, "mse_batch": 256, "mse_lr": 3e-3,
            "n_eval": 20_000, "n_mc": 200_000}

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.distributions as D

from lib.notebook import open_notebook
from lib.plotting import TWO_COLUMN, savefig
from lib.avae import generator_loss, latent_reconstruction_loss
from lib.losses import discriminator_loss, vae_loss
from lib.method import Method
from lib.nets import mlp
from lib.toys import random_discrete_joint
from lib.train import fit

nb = open_notebook(globals(), "40_avae_objective", seed=True, cpu_threads=1)  # tiny nets: one CPU thread
profile, device = nb.profile, nb.device
BIMODAL = {"sigma_e": 0.5, "mode": 1.0, "mode_noise": 0.1, "window": 0.3, "gap": 0.5}
LINEAR = {"D": 5, "Z": 3, "col_norms": [2.0, 1.0, 0.5], "tau": 0.5}   # x = W z + tau * noise, W with orthogonal columns
TOY = {"nx": 4, "nz": 5}
TOL = {
    "exact": 1e-12,          # closed forms and identities in float64: sums of <= 20 terms of order 1
    "lbfgs": 1e-8,           # LBFGS on a strictly convex quadratic (float64, gradient tolerance 1e-13): minimiser error
    "n_se": 4.0,             # Monte Carlo claims: within 4 standard errors
    "ks_c": 1.949,           # Kolmogorov-Smirnov critical constant at alpha = 1e-3: sqrt(-ln(alpha / 2) / 2)
    "mse_dec_mae": 0.05,     # mean |Dec_MLP(z) - E[x|z]| over z ~ p(z): the target is x itself, conditional std 1 in x2
    "mse_mode_mass": 0.01,   # mass of the MSE decoder's x2 within +-0.3 of a mode (closed-form optimum: exactly 0)
    "gan_mode_mass": 0.35,   # min over the two modes of the generator's mass within +-0.3 of the mode (data: ~0.5 each)
    "gan_gap": 0.10,         # generator mass with |x2| < 0.5 (data: ~1e-6; midpoint decoder: ~1)
    "gan_x1_rms": 0.08,      # rms(G(z, xi)_1 - z): L_Z's optimum is x1_hat = z; the MSE optimum is off by (1 - c) rms
}
run_dir = nb.start(config={**SETTINGS, "bimodal": BIMODAL, "linear": LINEAR, "toy": TOY, "tol": TOL,
                           "adam_betas": {"gan": [0.5, 0.999], "mse_decoder": [0.9, 0.999]},
                           "L_Z_variant": "slides (default); 'code' shown in Sec. 2 only",
                           "gan_generator_loss": "softplus(-C(G)) + L_Z (lib.avae.generator_loss, weight 1)",
                           "gan_discriminator_loss": "logistic, softplus form (lib.asvae.discriminator_loss)"})
print(SETTINGS)
t_start = time.perf_counter()
f64 = torch.float64

# %% [markdown]
# ## 1. Why pixel MSE blurs, and what $\mathcal L_Z$ + an adversary does instead
#
# **The MSE optimum is the conditional mean.** For any decoder $\hat x(z)$ and the encoder joint $q(x,z)$,
#
# $$
# \mathbb E_{q(x,z)}\|x - \hat x(z)\|^2 = \mathbb E_{q(z)}\|\hat x(z) - \mathbb E[x\mid z]\|^2 + \mathbb E_{q(z)}\mathrm{tr}\,\mathrm{Cov}[x\mid z],
# $$
#
# (expand around $\mathbb E[x\mid z]$; the cross term has zero mean given $z$), minimised by $\hat x^*(z) = \mathbb E[x\mid z]$:
# where the code leaves $x$ uncertain, the optimum averages the plausible $x$ (the slides' Eq. 3). The same argument for the
# slides' general loss $\frac12\|f(\hat x) - g(x)\|^2$ gives $f(\hat x^*(z)) = \mathbb E[g(x)\mid z]$ (their Eq. 2).
#
# **Toy.** $x = (x_1, x_2)$ with $x_1\sim\mathcal N(0,1)$ and, independently, $x_2 = \pm 1 + 0.1\,n$ (fair sign, $n\sim\mathcal N(0,1)$).
# The encoder is fixed and Gaussian with data-independent $\sigma_e = 0.5$: $q(z\mid x) = \mathcal N(c\,x_1, \sigma_e^2)$,
# $c = \sqrt{1-\sigma_e^2}$. It ignores $x_2$ (the bottleneck: the code does not determine that coordinate), and its aggregated
# posterior is $\mathcal N(0, c^2 + \sigma_e^2) = \mathcal N(0,1) = p(z)$. Under $q(x,z)$, $x_1\mid z \sim \mathcal N(cz, \sigma_e^2)$ and
# $x_2$ is independent of $z$, so
#
# $$
# \mathbb E[x\mid z] = (c\,z,\ 0):
# $$
#
# the MSE decoder puts $x_2$ at the midpoint of the two modes, where the data have no mass, and also shrinks $x_1$ by $c$.
#
# **AVAE's generator.** $G(z,\xi)$ with $\xi\sim\mathcal N(0,1)$, trained on $z\sim p(z)$ with
# `lib.avae.generator_loss` $= \mathrm{softplus}(-C(G)) + \mathcal L_Z(G)$ against a discriminator $C$ trained with the logistic loss
# (`lib.asvae.discriminator_loss`, softplus form). Here $\mu_e(\hat x) = c\,\hat x_1$, so
# $\mathcal L_Z = \frac12 (c/\sigma_e)^2(\hat x_1 - z)^2$: its optimum $\hat x_1 = z$ has the data's law $\mathcal N(0,1)$, and $\mathcal L_Z$ says nothing
# about $\hat x_2$, which the adversary alone shapes. So $\hat x = (z, \pm1 + \text{noise})$ is optimal for both terms. The
# training loop is `lib.train.fit` with a small `Method` defined here (the future `lib` AVAE model will replace it); one
# discriminator step per generator step, Adam $\beta = (0.5, 0.999)$.
#
# *Tolerances.* MSE decoder (`mlp([1, 64, 64, 2])`, `lib.avae.vae_loss` with the fixed encoder, so only its squared-error
# term moves the decoder): $\mathrm{mean}|\mathrm{Dec}(z) - \mathbb E[x\mid z]| \le 0.05$ (the regression target has conditional standard
# deviation 1 in $x_2$; the mean of 1500 noisy Adam steps with cosine decay stays well inside this), and then its mass within
# $\pm0.3$ of either mode $\le 0.01$ (the exact optimum has none: it is $0.7$ away). Generator: mass within $\pm0.3$ of **each**
# mode $\ge 0.35$ (the data have $\approx 0.5$ each; a generator that drops a mode has $\approx 0$ there), mass in the gap
# $|\hat x_2| < 0.5$ at most $0.10$ (the data have $\sim10^{-6}$ there; a continuous map of $\xi$ must cross the gap, which costs
# a little mass; the midpoint decoder has all its mass there), and $\mathrm{rms}(\hat x_1 - z) \le 0.08$ (the MSE optimum
# $c\,z$ misses by $(1-c)$ rms, printed, so it fails this check). GAN training on toys is seed-sensitive: these settings
# were checked to pass for seeds 0, 1 and 2. *Control*: the same GAN without $\mathcal L_Z$ (weight 0) also finds both modes
# but nothing ties $\hat x_1$ to $z$, so it must fail the $\hat x_1$ check (how far off it lands is arbitrary: any
# measure-preserving map of $(z,\xi)$ is optimal for the adversary alone; it failed the check for seeds 0, 1 and 2).

# %%
SIG_A = BIMODAL["sigma_e"]
C_A = math.sqrt(1 - SIG_A**2)
LOG_SIG_A = torch.tensor([math.log(SIG_A)], device=device)


def sample_bimodal(n: int) -> torch.Tensor:
    """x ~ data of Sec. 1: (n, 2), x1 ~ N(0, 1), x2 = +-mode + mode_noise * N(0, 1)."""
    x1 = torch.randn(n, device=device)
    sign = torch.randint(0, 2, (n,), device=device).float() * 2 - 1
    return torch.stack([x1, BIMODAL["mode"] * sign + BIMODAL["mode_noise"] * torch.randn(n, device=device)], 1)


def mu_e_a(x: torch.Tensor) -> torch.Tensor:
    """The fixed encoder's mean c * x1: (n, 1)."""
    return C_A * x[:, :1]


class Batches:
    """Batch source for lib.train.fit (the ``next`` API of lib.data.BatchSampler); fresh data every call."""

    def __init__(self, batch: int):
        self.batch = batch

    def next(self) -> torch.Tensor:
        return sample_bimodal(self.batch)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ToyAVAEGenerator(Method):
    """G(z, xi) -> x_hat (B, 2) and C(x) -> logit, with AVAE's generator loss; the encoder is the fixed mu_e_a."""

    players = {"discriminator": ("C",), "generator": ("G",)}
    critic_players = ("discriminator",)

    def __init__(self, hidden, xi_dim: int, critic_steps: int, lz_weight: float = 1.0):
        super().__init__()
        self.xi_dim, self.critic_steps, self.lz_weight = xi_dim, critic_steps, lz_weight
        self.G, self.C = mlp([1 + xi_dim, *hidden, 2]), mlp([2, *hidden, 1])

    @property
    def schedule(self):
        return [("discriminator", self.critic_steps), ("generator", 1)]

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(torch.cat([z, torch.randn(z.shape[0], self.xi_dim, device=z.device)], 1))

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.randn(x.shape[0], 1, device=x.device)
        if player == "discriminator":
            with torch.no_grad():
                x_hat = self.generate(z)
            return {"loss": discriminator_loss(self.C(x)[:, 0], self.C(x_hat)[:, 0])}
        x_hat = self.generate(z)
        lz = latent_reconstruction_loss(mu_e_a(x_hat), z, LOG_SIG_A).mean().detach()
        return {"loss": generator_loss(self.C(x_hat)[:, 0], mu_e_a(x_hat), z, LOG_SIG_A, weight=self.lz_weight).mean(),
                "L_Z": lz}


def train_mse_decoder(seed: int) -> tuple[torch.nn.Module, float]:
    """Decoder z -> x_hat trained with lib.avae.vae_loss on (z ~ q(z|x), x), the encoder fixed. returns (net, seconds)."""
    torch.manual_seed(seed)
    dec = mlp([1, *SETTINGS["gan_hidden"], 2]).to(device)
    opt = torch.optim.Adam(dec.parameters(), lr=SETTINGS["mse_lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, SETTINGS["mse_steps"], eta_min=0.01 * SETTINGS["mse_lr"])
    t0 = time.perf_counter()
    for _ in range(SETTINGS["mse_steps"]):
        x = sample_bimodal(SETTINGS["mse_batch"])
        mu = mu_e_a(x)
        z = mu + SIG_A * torch.randn_like(mu)
        loss = vae_loss(x, dec(z), mu, LOG_SIG_A, beta=1.0).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return dec.eval(), time.perf_counter() - t0


def train_gan(seed: int, lz_weight: float) -> tuple[ToyAVAEGenerator, list, float]:
    torch.manual_seed(seed)
    m = ToyAVAEGenerator(SETTINGS["gan_hidden"], SETTINGS["xi_dim"], SETTINGS["critic_steps"], lz_weight).to(device)
    t0 = time.perf_counter()
    hist = fit(m, Batches(SETTINGS["gan_batch"]), steps=SETTINGS["gan_steps"],
               lr={"discriminator": SETTINGS["gan_lr"], "generator": SETTINGS["gan_lr"]}, betas=(0.5, 0.999),
               log_every=100, progress=False, run_dir=run_dir / f"gan_s{seed}_lz{lz_weight:g}")
    return m, hist, time.perf_counter() - t0


def describe(x_hat: torch.Tensor, z: torch.Tensor) -> dict:
    """Mode masses, gap mass and code fidelity of samples x_hat (n, 2) made from codes z (n, 1)."""
    x2, w = x_hat[:, 1], BIMODAL["window"]
    return {"mass near +1": ((x2 - BIMODAL["mode"]).abs() < w).float().mean().item(),
            "mass near -1": ((x2 + BIMODAL["mode"]).abs() < w).float().mean().item(),
            "gap mass |x2| < 0.5": (x2.abs() < BIMODAL["gap"]).float().mean().item(),
            "rms(x1_hat - z)": (x_hat[:, 0] - z[:, 0]).pow(2).mean().sqrt().item(),
            "Var x1_hat": x_hat[:, 0].var().item(), "L_Z": latent_reconstruction_loss(mu_e_a(x_hat), z, LOG_SIG_A).mean().item()}


mse_dec, secs_mse = train_mse_decoder(SEED + 1)
gan, gan_hist, secs_gan = train_gan(SEED + 2, lz_weight=1.0)
gan0, gan0_hist, secs_gan0 = train_gan(SEED + 3, lz_weight=0.0)

n_ev = SETTINGS["n_eval"]
torch.manual_seed(SEED + 4)
z_ev = torch.randn(n_ev, 1, device=device)
x_data = sample_bimodal(n_ev)
with torch.no_grad():
    xh_mse, xh_gan, xh_gan0 = mse_dec(z_ev), gan.generate(z_ev), gan0.generate(z_ev)
cond_mean = torch.cat([C_A * z_ev, torch.zeros_like(z_ev)], 1)                     # E[x | z], closed form
mse_dec_mae = (xh_mse - cond_mean).abs().mean().item()
tab_a = pd.DataFrame({
    "data x (z: its own x1)": describe(x_data, x_data[:, :1]),
    "closed-form MSE optimum E[x|z]": describe(cond_mean, z_ev),
    "MSE decoder (trained)": describe(xh_mse, z_ev),
    "AVAE generator: GAN + L_Z": describe(xh_gan, z_ev),
    "control: GAN alone (L_Z weight 0)": describe(xh_gan0, z_ev),
}).T
print(f"sigma_e = {SIG_A}, c = sqrt(1 - sigma_e^2) = {C_A:.6f}; MSE optimum's rms(x1_hat - z) = 1 - c = {1 - C_A:.4f}")
print(f"training: MSE decoder {secs_mse:.1f} s, GAN + L_Z {secs_gan:.1f} s, GAN alone {secs_gan0:.1f} s; seed {SEED}")
print(f"MSE decoder: mean |Dec(z) - E[x|z]| = {mse_dec_mae:.4f} (tol {TOL['mse_dec_mae']})")
print(tab_a.to_string(float_format=lambda v: f"{v:.4f}"))

r_mse, r_gan, r_gan0 = (tab_a.loc[k] for k in ("MSE decoder (trained)", "AVAE generator: GAN + L_Z",
                                              "control: GAN alone (L_Z weight 0)"))
mse_mode_mass = max(r_mse["mass near +1"], r_mse["mass near -1"])
gan_mode_mass = min(r_gan["mass near +1"], r_gan["mass near -1"])
assert mse_dec_mae < TOL["mse_dec_mae"], mse_dec_mae
assert mse_mode_mass < TOL["mse_mode_mass"], r_mse                     # blur: no mass where the data are
assert gan_mode_mass > TOL["gan_mode_mass"], r_gan                     # both modes recovered
assert r_gan["gap mass |x2| < 0.5"] < TOL["gan_gap"], r_gan
assert r_gan["rms(x1_hat - z)"] < TOL["gan_x1_rms"], r_gan             # and faithful to the code
# the MSE decoder fails each generator check, and the GAN without L_Z ignores the code
assert r_mse["gap mass |x2| < 0.5"] > 1 - TOL["gan_gap"] and r_mse["rms(x1_hat - z)"] > TOL["gan_x1_rms"], r_mse
assert min(r_gan0["mass near +1"], r_gan0["mass near -1"]) > TOL["gan_mode_mass"], r_gan0
assert r_gan0["rms(x1_hat - z)"] > TOL["gan_x1_rms"], r_gan0                # fails the code-fidelity check

# %%
fig, axes = plt.subplots(1, 4, figsize=(TWO_COLUMN, 2.9), layout="constrained")
n_show = 1500
panels = [("data $x$\n(colour: $x_1$)", x_data, x_data[:, 0]),
          ("MSE decoder $\\hat x(z)$\n(colour: the code $z$)", xh_mse, z_ev[:, 0]),
          ("AVAE: GAN + $\\mathcal{L}_Z$\n(colour: the code $z$)", xh_gan, z_ev[:, 0])]
for i, (ax, (title, pts, col)) in enumerate(zip(axes, panels)):
    pts, col = pts[:n_show].cpu(), col[:n_show].cpu()
    ax.scatter(pts[:, 0], pts[:, 1], c=col, cmap="coolwarm", s=1.5, vmin=-2.5, vmax=2.5, rasterized=True)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-1.6, 1.6)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
ax = axes[3]
bins = np.linspace(-1.6, 1.6, 81)
for label, pts, color in (("data", x_data, "0.6"), ("MSE decoder", xh_mse, "C3"), ("GAN + $\\mathcal{L}_Z$", xh_gan, "C0"),
                          ("GAN alone", xh_gan0, "C2")):
    ax.hist(pts[:, 1].cpu().numpy(), bins=bins, density=True, histtype="step" if label != "data" else "stepfilled",
            color=color, lw=1.2, label=label, alpha=0.6 if label == "data" else 1)
ax.set_xlabel("$x_2$ (not encoded)")
ax.set_ylabel("density")
ax.set_yscale("log")
ax.set_ylim(1e-2, None)
ax.set_title("law of $x_2$\n(log scale)")
fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4)
fig.suptitle(f"Sec. 1: the MSE optimum $E[x\\mid z]$ sits between the modes; the adversary recovers them\n"
             f"({profile} profile, seed {SEED}, {SETTINGS['gan_steps']} GAN iterations). "
             f"$x_2$ mass near the modes: MSE {mse_mode_mass:.3f},\nGAN + $\\mathcal{{L}}_Z$ (min over modes) "
             f"{gan_mode_mass:.3f}; rms$(\\hat x_1 - z)$ = {r_gan['rms(x1_hat - z)']:.3f}", fontsize=9)
savefig(fig, "40_avae_bimodal")
plt.show()

# %% [markdown]
# ## 2. $\mathcal L_Z$ is compatible with the GAN optimum: the linear-Gaussian case
#
# **General fact.** Let the encoder be $z = \mu_e(x) + \sigma_e\odot\varepsilon$, $\varepsilon\sim\mathcal N(0, I)$ independent of $x$, with
# $\sigma_e$ data-independent. If the aggregated posterior is the prior, $z\sim\mathcal N(0, I)$, then (law of total covariance)
# $\mathrm{Cov}\,\mu_e(x) = I - \mathrm{diag}\,\sigma_e^2$, so $\mathrm{Var}\,\mu_{e,j}(x) = 1 - \sigma_{e,j}^2$ (this needs $\sigma_e < 1$). More:
# by independence the characteristic functions multiply, $\varphi_z(t) = \varphi_{\mu}(t)\,e^{-\frac12\sum_j\sigma_j^2t_j^2}$, so
# $\varphi_\mu(t) = e^{-\frac12\sum_j(1-\sigma_j^2)t_j^2}$: $\mu_e(x)\sim\mathcal N(0, I - \mathrm{diag}\,\sigma_e^2)$ **exactly**, for any
# $\mu_e$, which is the law of $\sqrt{1-\sigma_e^2}\odot z$ for $z\sim p(z)$. This is the slides' claim
# $p(\mu_e(\hat x^*(z))) = p(\mu_e(x))$: the $\mathcal L_Z$ optimum $\mu_e(\hat x^*(z)) = \sqrt{1-\sigma_e^2}\,z$ (for a generator given $z$,
# the target is a function of $z$, so $\mathbb E[g\mid z] = g$ in the slides' Eq. 2) reproduces the encodings of real data,
# as a perfect GAN's samples $\hat x\sim p_D$ would, so the two terms do not conflict. The pixel-MSE optimum
# $\mathbb E[x\mid z]$ does not have this property, nor does the code variant's optimum $\mu_e(\hat x) = z$ (variance 1, not
# $1 - \sigma_e^2$). "Aggregated posterior = prior" is only approached in practice (the KL term of Sec. 3 pushes towards it).
#
# **Model.** $z\sim\mathcal N(0, I_3)$, $x = Wz + \tau\nu$, $\nu\sim\mathcal N(0, I_5)$, $\tau = 0.5$, with $W$ having orthogonal
# columns of norms $(2, 1, 0.5)$ (a random orthonormal basis from `SEED`). The encoder is the exact posterior,
# $q(z\mid x) = \mathcal N(Ax, \Sigma)$ with $M = W^\top W + \tau^2 I$, $A = M^{-1}W^\top$, $\Sigma = \tau^2 M^{-1}$; $\Sigma$ is diagonal
# (asserted), i.e. a data-independent $\sigma_e$, and the exact posterior's aggregate is the prior. Checks:
#
# * closed form: $\mathrm{Cov}\,\mu_e(x) = A(WW^\top + \tau^2I)A^\top = I - \mathrm{diag}\,\sigma_e^2$ (*tolerance* $10^{-12}$, float64 products
#   of $5\times5$ matrices);
# * Monte Carlo ($n$ printed): per dimension $|\widehat{\mathrm{Var}} - (1-\sigma_j^2)| \le 4\,\mathrm{SE}$ with
#   $\mathrm{SE} = (1-\sigma_j^2)\sqrt{2/(n-1)}$ (Gaussian sample variance), cross-covariances within $4\sqrt{v_iv_j/n}$, and the
#   Kolmogorov-Smirnov statistic of $\mu_{e,j}(x)$ against the exact CDF of $\sqrt{1-\sigma_j^2}\,z_j\sim\mathcal N(0, 1-\sigma_j^2)$
#   below its $\alpha = 10^{-3}$ critical value $1.949/\sqrt n$; the fitted optimum's and the controls' encodings are compared with
#   the data's by the two-sample statistic (critical value $1.949\sqrt{2/n}$);
# * the $\mathcal L_Z$ optimum: a linear generator $\hat x = Bz$ fitted by LBFGS to
#   `latent_reconstruction_loss(mu_e(B z), z, log sigma_e)` on a fixed batch of codes (a strictly convex quadratic in $AB$,
#   minimised at $AB = \mathrm{diag}\sqrt{1-\sigma_e^2}$ whatever the batch), within $10^{-8}$; the same with `variant="code"`
#   (minimiser $AB = I$). *Controls*: the MSE optimum $\hat x = \mathbb E[x\mid z] = Wz$ gives $\mu_e = AWz = (1-\sigma_e^2)z$, variance
#   $(1-\sigma_e^2)^2$; the code variant's optimum gives variance 1. Both must fail the variance check in every dimension
#   (their Monte Carlo samples are drawn like the data's); the KS check is asserted to fail for the dimension with the
#   largest $\sigma_e$ (for small $\sigma_e$ both laws are within the KS resolution, printed).

# %%
Dx, Zl, tau = LINEAR["D"], LINEAR["Z"], LINEAR["tau"]
g_lin = torch.Generator().manual_seed(SEED)
basis, _ = torch.linalg.qr(torch.randn(Dx, Dx, generator=g_lin, dtype=f64))
W = basis[:, :Zl] * torch.tensor(LINEAR["col_norms"], dtype=f64)
M = W.T @ W + tau**2 * torch.eye(Zl, dtype=f64)
A = torch.linalg.solve(M, W.T)                                   # mu_e(x) = A x
Sigma = tau**2 * torch.linalg.inv(M)
sig2 = Sigma.diagonal().clone()
log_sig_lin = 0.5 * sig2.log()
Sigma_x = W @ W.T + tau**2 * torch.eye(Dx, dtype=f64)
cov_mu = A @ Sigma_x @ A.T
cov_mu_err = (cov_mu - (torch.eye(Zl, dtype=f64) - torch.diag(sig2))).abs().max().item()
agg_err = (cov_mu + Sigma - torch.eye(Zl, dtype=f64)).abs().max().item()
offdiag_sigma = (Sigma - torch.diag(sig2)).abs().max().item()
print(f"sigma_e = {sig2.sqrt().tolist()}  (1 - sigma_e^2 = {(1 - sig2).tolist()})")
print(f"max off-diagonal of the posterior covariance: {offdiag_sigma:.1e}; max|Cov mu_e(x) - (I - diag sigma^2)| = "
      f"{cov_mu_err:.1e}; max|aggregated posterior cov - I| = {agg_err:.1e}")
assert offdiag_sigma < TOL["exact"] and cov_mu_err < TOL["exact"] and agg_err < TOL["exact"]


def ks_two_sample(a: torch.Tensor, b: torch.Tensor) -> float:
    """sup_t |F_a(t) - F_b(t)| of two 1-D samples."""
    a, b = a.sort().values, b.sort().values
    t = torch.cat([a, b])
    return (torch.searchsorted(a, t, right=True) / len(a) - torch.searchsorted(b, t, right=True) / len(b)).abs().max().item()


def ks_one_sample_normal(a: torch.Tensor, std: float) -> float:
    """sup_t |F_a(t) - Phi(t / std)| of a 1-D sample against N(0, std^2)."""
    a = a.sort().values
    cdf = torch.special.ndtr(a / std)
    i = torch.arange(1, len(a) + 1, dtype=a.dtype)
    return max((i / len(a) - cdf).max().item(), (cdf - (i - 1) / len(a)).max().item())


n_mc = SETTINGS["n_mc"]
torch.manual_seed(SEED + 5)
z_src = torch.randn(n_mc, Zl, dtype=f64)
x_lin = z_src @ W.T + tau * torch.randn(n_mc, Dx, dtype=f64)
mu_data = x_lin @ A.T                                            # mu_e(x) for x ~ data
z_gen = torch.randn(n_mc, Zl, dtype=f64)                         # independent codes for the generator

# L_Z optima over a linear generator x_hat = B z, fitted with the library's loss on a fixed batch of codes
z_fit = torch.randn(4096, Zl, dtype=f64)


def fit_linear_generator(variant: str) -> torch.Tensor:
    B = torch.zeros(Dx, Zl, dtype=f64, requires_grad=True)
    opt = torch.optim.LBFGS([B], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=0, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = latent_reconstruction_loss((z_fit @ B.T) @ A.T, z_fit, log_sig_lin, variant).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return B.detach()


shrink = (1 - sig2).sqrt()
AB = {v: A @ fit_linear_generator(v) for v in ("slides", "code")}
lz_opt_err = (AB["slides"] - torch.diag(shrink)).abs().max().item()
lz_code_opt_err = (AB["code"] - torch.eye(Zl, dtype=f64)).abs().max().item()
AW = A @ W
mse_map_err = (AW - torch.diag(1 - sig2)).abs().max().item()
print(f"L_Z optimum (slides): max|A B - diag sqrt(1 - sigma^2)| = {lz_opt_err:.1e};  (code): max|A B - I| = "
      f"{lz_code_opt_err:.1e};  MSE optimum: max|A W - diag(1 - sigma^2)| = {mse_map_err:.1e}")
assert lz_opt_err < TOL["lbfgs"] and lz_code_opt_err < TOL["lbfgs"] and mse_map_err < TOL["exact"]

encodings = {   # mu_e of: data; the L_Z (slides) optimum; controls: the code variant's optimum and the MSE optimum W z
    "mu_e(x), x ~ data": mu_data,
    "L_Z optimum (slides): mu_e(B* z) = sqrt(1-s^2) z": z_gen @ AB["slides"].T,
    "control, L_Z 'code' optimum: mu_e(B* z) = z": z_gen @ AB["code"].T,
    "control, MSE optimum: mu_e(W z) = (1-s^2) z": z_gen @ AW.T,
}
ks_crit = TOL["ks_c"] * math.sqrt(2 / n_mc)       # two independent samples of size n
ks_crit_1 = TOL["ks_c"] * math.sqrt(1 / n_mc)     # one sample against an exact CDF
target_var = 1 - sig2
rows = []
for name, mu in encodings.items():
    v = mu.var(0)
    se = target_var * math.sqrt(2 / (n_mc - 1))
    cov = torch.cov(mu.T)
    off = max(abs(cov[i, j].item()) / math.sqrt(target_var[i] * target_var[j] / n_mc) for i in range(Zl) for j in range(i))
    row = {"encodings": name, "max |Var - (1-s^2)| / SE": ((v - target_var).abs() / se).max().item(),
           "min |Var - (1-s^2)| / SE": ((v - target_var).abs() / se).min().item(), "max |cross-cov| / SE": off}
    for j in range(Zl):
        row[f"Var[{j}]"] = v[j].item()
    for j in range(Zl):
        row[f"KS[{j}]"] = (ks_one_sample_normal(mu[:, j], target_var[j].sqrt().item()) if name == "mu_e(x), x ~ data"
                           else ks_two_sample(mu[:, j], mu_data[:, j]))
    rows.append(row)
tab_b = pd.DataFrame(rows).set_index("encodings")
print(f"n = {n_mc}; 1 - sigma^2 = {target_var.tolist()}; KS critical values (alpha 1e-3): one-sample {ks_crit_1:.5f}, "
      f"two-sample {ks_crit:.5f}")
print("KS columns: data row vs the exact CDF of N(0, 1 - s^2) (the law of sqrt(1-s^2) z); other rows vs the data's encodings")
print(tab_b.T.to_string(float_format=lambda v: f"{v:.5f}"))

r_data, r_lz = tab_b.iloc[0], tab_b.iloc[1]
ks_cols = [f"KS[{j}]" for j in range(Zl)]
mc_var_z = r_data["max |Var - (1-s^2)| / SE"]
ks_max = max(r_data[ks_cols].max() / ks_crit_1, r_lz[ks_cols].max() / ks_crit)
for r in (r_data, r_lz):
    assert r["max |Var - (1-s^2)| / SE"] <= TOL["n_se"] and r["max |cross-cov| / SE"] <= TOL["n_se"], r
assert (r_data[ks_cols] < ks_crit_1).all(), r_data
assert (r_lz[ks_cols] < ks_crit).all(), r_lz
j_big = int(sig2.argmax())
for name in list(encodings)[2:]:
    r = tab_b.loc[name]
    assert r["min |Var - (1-s^2)| / SE"] > TOL["n_se"], r                # wrong variance in every dimension
    assert r[f"KS[{j_big}]"] > ks_crit, r                                # and a detectably different law
code_var_ratio = (tab_b.iloc[2][[f"Var[{j}]" for j in range(Zl)]].to_numpy() / target_var.numpy())
print(f"one toy number: Var of the code variant's optimum / Var mu_e(x) = {code_var_ratio.round(4).tolist()} "
      f"(= 1 / (1 - sigma^2) = {(1 / target_var).numpy().round(4).tolist()})")

# %%
fig, axes = plt.subplots(1, Zl, figsize=(TWO_COLUMN, 3.4), layout="constrained")
grid = torch.linspace(-3.5, 3.5, 300, dtype=f64)
for j, ax in enumerate(axes):
    ax.hist(mu_data[:, j].numpy(), bins=120, range=(-3.5, 3.5), density=True, color="0.75",
            label="$\\mu_e(x)$, $x \\sim$ data (Monte Carlo)")
    for label, var, style in ((r"$\sqrt{1-\sigma^2}\,z$: $\mathcal{L}_Z$ optimum (slides)", target_var[j], "k-"),
                              (r"$z$: $\mathcal{L}_Z$ optimum (code variant)", torch.tensor(1.0, dtype=f64), "C1--"),
                              (r"$(1-\sigma^2)\,z$: MSE optimum", target_var[j] ** 2, "C3:")):
        ax.plot(grid, D.Normal(0.0, var.sqrt()).log_prob(grid).exp(), style, lw=1.2, label=label)
    ax.set_xlabel(f"$\\mu_{{e,{j}}}$")
    ax.set_title(f"latent dim {j}: $\\sigma_e$ = {sig2[j].sqrt():.3f}\nvariances {target_var[j]:.3f} | 1 | {target_var[j] ** 2:.3f}\n"
                 f"KS(data, $\\mathcal{{L}}_Z$ opt.) = {r_lz[f'KS[{j}]']:.4f}")
axes[0].set_ylabel("density")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
fig.suptitle(f"Sec. 2: linear-Gaussian model, aggregated posterior = prior:\nthe $\\mathcal{{L}}_Z$ optimum has the law of "
             f"$\\mu_e(x)$ ({profile} profile)\n"
             r"(titles: variances of the $\mathcal{L}_Z$ (slides) | $\mathcal{L}_Z$ (code) | MSE optima)")
savefig(fig, "40_avae_linear_gaussian")
plt.show()

# %% [markdown]
# ## 3. ELBO surgery (the slides' Eq. 1) and what it implies for a data-independent $\sigma_e$
#
# The slides write the VAE loss as reconstruction error $+\ I_q(x;z)\ +\ \mathrm{KL}(q(z)\|p(z))$. This rests on
# (Hoffman & Johnson 2016), with $q(x,z) = q(x)q(z\mid x)$ and $q(z) = \mathbb E_{q(x)}q(z\mid x)$,
#
# $$
# \mathbb E_{q(x)}\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)
# = \mathbb E_{q(x,z)}\Big[\log\frac{q(z\mid x)}{q(z)} + \log\frac{q(z)}{p(z)}\Big]
# = I_q(x;z) + \mathrm{KL}\big(q(z)\,\|\,p(z)\big).
# $$
#
# So the KL term pushes the aggregated posterior towards the prior (what Sec. 2 assumes) **and** the information the code
# keeps about $x$ down: the bottleneck whose lost information the MSE decoder averages over (Sec. 1).
#
# **Discrete toy** (exact): $x\in\{0..3\}$, $z\in\{0..4\}$, $q(x), q(z\mid x)$ from `random_discrete_joint(4, 5, seed=SEED)` and a
# random prior $p(z)$ (from `random_discrete_joint(5, 2, seed=SEED + 1000)`), each side computed independently with
# `torch.distributions` (`kl_divergence` of `Categorical`s; $I_q$ as the KL of the joint from the product of its marginals).
# *Tolerance* $10^{-12}$ (float64 sums of 20 terms). *Control*: dropping either term misses by that term (asserted
# $> 10^{-3}$, i.e. far from round-off).
#
# **Data-independent $\sigma_e$.** With a Gaussian encoder, $h(z\mid x) = \sum_j\log(\sigma_{e,j}\sqrt{2\pi e})$ does not depend on $x$;
# if moreover $q(z) = p(z) = \mathcal N(0, I)$, then $I_q(x;z) = h(z) - h(z\mid x) = -\sum_j\log\sigma_{e,j}$ **exactly, for any $\mu_e$**,
# and the KL term equals it. The information in the code is set by $\sigma_e$ alone: $\sigma_e\to1$ carries none (and
# $\mathcal L_Z$'s $\sqrt{1-\sigma_e^2}$ requires $\sigma_e < 1$), and $\mathcal L_Z$'s per-dimension weight $1/\sigma_{e,j}^2 = e^{2 I_j}$ grows
# with the information dimension $j$ carries. Checked on Sec. 2's linear-Gaussian model, where $I_q$ is computed
# independently from the log-determinants of the Gaussian joint, $I_q = \frac12(\log\det\Sigma_x + \log\det\Sigma_z - \log\det\Sigma_{xz})$,
# and $\mathbb E_x\mathrm{KL}$ from the closed form $\frac12\sum_j(\mathbb E\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)$ (*tolerance* $10^{-12}$).

# %%
q_x, q_z_x = random_discrete_joint(TOY["nx"], TOY["nz"], seed=SEED)
p_z = random_discrete_joint(TOY["nz"], 2, seed=SEED + 1000)[0]
q_xz = q_x[:, None] * q_z_x
q_z = q_xz.sum(0)
Cat = lambda probs: D.Categorical(probs=probs)  # noqa: E731
E_kl = (q_x * D.kl_divergence(Cat(q_z_x), Cat(p_z))).sum().item()
mi_disc = D.kl_divergence(Cat(q_xz.flatten()), Cat((q_x[:, None] * q_z[None, :]).flatten())).item()
kl_agg = D.kl_divergence(Cat(q_z), Cat(p_z)).item()
surgery_err = abs(E_kl - (mi_disc + kl_agg))
print(f"discrete toy: E_x KL(q(z|x)||p(z)) = {E_kl:.12f}, I_q(x;z) = {mi_disc:.12f}, KL(q(z)||p(z)) = {kl_agg:.12f}; "
      f"|lhs - rhs| = {surgery_err:.1e}")
assert surgery_err < TOL["exact"], surgery_err
assert abs(E_kl - mi_disc) > 1e-3 and abs(E_kl - kl_agg) > 1e-3          # controls: each term matters here

# linear-Gaussian model of Sec. 2: joint of (x, z) under the encoder, q(x) = N(0, Sigma_x), z = A x + sigma * eps
Sigma_z = A @ Sigma_x @ A.T + Sigma
Sigma_xz = torch.cat([torch.cat([Sigma_x, Sigma_x @ A.T], 1), torch.cat([A @ Sigma_x, Sigma_z], 1)], 0)
mi_lin = 0.5 * (torch.logdet(Sigma_x) + torch.logdet(Sigma_z) - torch.logdet(Sigma_xz)).item()
E_kl_lin = 0.5 * (cov_mu.diagonal() + sig2 - 1 - sig2.log()).sum().item()
kl_agg_lin = D.kl_divergence(D.MultivariateNormal(torch.zeros(Zl, dtype=f64), Sigma_z),
                             D.MultivariateNormal(torch.zeros(Zl, dtype=f64), torch.eye(Zl, dtype=f64))).item()
minus_sum_log_sigma = -log_sig_lin.sum().item()
lin_info_err = max(abs(mi_lin - minus_sum_log_sigma), abs(E_kl_lin - minus_sum_log_sigma), abs(kl_agg_lin))
print(f"linear-Gaussian: I_q = {mi_lin:.12f}, E_x KL = {E_kl_lin:.12f}, KL(q(z)||p(z)) = {kl_agg_lin:.1e}, "
      f"-sum log sigma_e = {minus_sum_log_sigma:.12f} nats; per dimension -log sigma_e = {(-log_sig_lin).tolist()}")
assert lin_info_err < TOL["exact"], lin_info_err

# %% [markdown]
# ## 4. Summary
#
# On a toy where the code leaves one coordinate bimodal, the pixel-MSE decoder converges to $\mathbb E[x\mid z]$, the midpoint,
# where the data have no mass, and shrinks the encoded coordinate by $\sqrt{1-\sigma_e^2}$; a generator $G(z,\xi)$ trained with
# the logistic adversary and the slides' $\mathcal L_Z$ puts its mass on both modes and reproduces the code, while the same GAN
# without $\mathcal L_Z$ finds the modes but ignores the code (numbers in the table of Sec. 1 and below). When the aggregated
# posterior equals the prior and $\sigma_e$ is data-independent, $\mu_e(x)\sim\mathcal N(0, I - \mathrm{diag}\,\sigma_e^2)$ exactly, which is
# the law of the slides' $\mathcal L_Z$ optimum $\sqrt{1-\sigma_e^2}\,z$; the MSE optimum has the smaller variance
# $(1-\sigma_e^2)^2$, and the released code's variant (no $\sqrt{1-\sigma_e^2}$) the larger variance 1. ELBO surgery holds to
# round-off, and with a data-independent $\sigma_e$ and $q(z) = p(z)$ the code carries exactly $-\sum_j\log\sigma_{e,j}$ nats.

# %%
runtime = time.perf_counter() - t_start
print(f"runtime after start_run: {runtime:.1f} s")
metrics = {
    "mse_decoder_mean_abs_err": {"value": mse_dec_mae, "n": n_ev,
                                 "implementation": f"mean |Dec_MLP(z) - E[x|z]|, {SETTINGS['mse_steps']} Adam steps, lib.avae.vae_loss; tol {TOL['mse_dec_mae']}"},
    "mse_decoder_mode_mass": {"value": mse_mode_mass, "n": n_ev,
                              "implementation": f"max over modes of the MSE decoder's x2 mass within +-{BIMODAL['window']} of the mode; tol {TOL['mse_mode_mass']}"},
    "gan_min_mode_mass": {"value": gan_mode_mass, "n": n_ev,
                          "implementation": f"min over modes of G(z, xi)'s x2 mass within +-{BIMODAL['window']}, GAN + L_Z (slides), {SETTINGS['gan_steps']} fit iterations; tol > {TOL['gan_mode_mass']}"},
    "gan_gap_mass": {"value": r_gan["gap mass |x2| < 0.5"], "n": n_ev,
                     "implementation": f"G(z, xi)'s mass with |x2| < {BIMODAL['gap']}; tol {TOL['gan_gap']}"},
    "gan_x1_rms_err": {"value": r_gan["rms(x1_hat - z)"], "n": n_ev,
                       "implementation": f"rms(G(z, xi)_1 - z), L_Z optimum x1_hat = z; tol {TOL['gan_x1_rms']}"},
    "gan_no_LZ_x1_rms_err": {"value": r_gan0["rms(x1_hat - z)"], "n": n_ev,
                             "implementation": f"control: the same GAN with L_Z weight 0, rms(G_1 - z) (must exceed {TOL['gan_x1_rms']})"},
    "mse_decoder_x1_rms_err": {"value": r_mse["rms(x1_hat - z)"], "n": n_ev,
                               "implementation": f"MSE decoder rms(Dec_1(z) - z); closed form 1 - sqrt(1 - sigma^2) = {1 - C_A:.4f}"},
    "linear_cov_mu_max_abs_err": {"value": cov_mu_err,
                                  "implementation": "max |Cov mu_e(x) - (I - diag sigma_e^2)|, linear-Gaussian exact posterior, float64"},
    "linear_var_mu_max_z": {"value": mc_var_z, "n": n_mc,
                            "implementation": f"max_j |sample Var mu_e,j(x) - (1 - sigma_j^2)| / SE; tol {TOL['n_se']}"},
    "linear_ks_max_over_critical": {"value": ks_max, "n": n_mc,
                                    "implementation": "max_j KS / its alpha=1e-3 critical value: mu_e(x) vs N(0, 1-s^2) (one-sample) and vs the fitted L_Z optimum's encodings (two-sample); tol < 1"},
    "lz_optimum_max_abs_err": {"value": lz_opt_err,
                               "implementation": "max |A B* - diag sqrt(1 - sigma^2)|, B* = LBFGS argmin of latent_reconstruction_loss (slides)"},
    "lz_code_optimum_max_abs_err": {"value": lz_code_opt_err,
                                    "implementation": "max |A B* - I|, B* = LBFGS argmin of latent_reconstruction_loss (variant='code')"},
    "code_variant_var_ratio_max": {"value": float(code_var_ratio.max()), "n": n_mc,
                                   "implementation": "max_j Var of the code variant's optimum / (1 - sigma_j^2) (closed form 1 / (1 - sigma_j^2))"},
    "elbo_surgery_abs_err": {"value": surgery_err,
                             "implementation": f"|E KL(q(z|x)||p(z)) - I_q - KL(q(z)||p(z))|, discrete toy {TOY['nx']}x{TOY['nz']}, float64"},
    "linear_information_max_abs_err": {"value": lin_info_err,
                                       "implementation": "max of |I_q + sum log sigma|, |E KL + sum log sigma|, |KL(q(z)||p(z))|, linear-Gaussian"},
    "toy_mutual_information": {"value": mi_disc, "implementation": "I_q(x;z) of the discrete toy (nats)"},
    "runtime_s": {"value": runtime, "implementation": f"wall time of the notebook after start_run, {device}"},
}
metrics = {k: {**v, "value": float(v["value"])} for k, v in metrics.items()}
nb.finish(metrics)
summary = pd.DataFrame([(k, v["value"], v["implementation"]) for k, v in metrics.items()],
                       columns=["metric", "value", "implementation"])
print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

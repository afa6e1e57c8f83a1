"""Trained weights behind the headline comparisons, and one command that re-evaluates them without training.

    # maintainers: a finished run folder of 12_avb_mnist or 21_asvae_mnist -> one small file per model
    python -m paper_reproductions.weights export runs/21_asvae_mnist/<stamp>_s0 --models asvae_r flow_vae
    # everyone: rebuild a committed model, re-evaluate its test log p(x) and set it beside the stored numbers
    python -m paper_reproductions.weights evaluate paper_reproductions/weights/21_asvae_mnist/standard/seed0/asvae_r.pt
    # is AIS long enough? the same images at several step counts, paired differences (issue 19's doubling rule)
    python -m paper_reproductions.weights ais-steps paper_reproductions/weights/12_avb_mnist_z32/standard/seed0/avb_ac-32.pt --steps 300 600 1200

A **weights file** (``paper_reproductions/weights/<experiment>/<profile>/seed<N>/<model>.pt``) is a ``torch.save``'d
dict of tensors and plain types only, so ``torch.load(path, weights_only=True)`` reads it (no pickled modules or
code). It holds (format :data:`FORMAT`, version :data:`FORMAT_VERSION`):

* ``format``, ``format_version``; ``experiment``, ``profile``, ``seed``, ``model`` (the notebook's name, e.g.
  ``"vae-32"``), ``metrics_prefix`` (its prefix in ``final_metrics.json``, e.g. ``"vae_32"``);
* ``registry_name`` and ``build_options`` (``x_shape``, ``z_dim`` and every option the notebook's ``build`` passes to
  :func:`lib.registry.build`), ``method_config`` (the checkpoint's :meth:`lib.method.Method.config`), ``state_dict``
  (every network of the method, adversaries included: AVB's ELBO uses its adversary), ``step`` (the run's last
  iteration);
* ``run`` (the run folder's name), ``trained_in`` (the folder that trained the model: ``run`` itself, or for a run
  that only re-evaluated another run's models, that run, :func:`lib.notebook.reuse_training`), ``git_commit`` (the
  commit the model was trained at, from that folder's ``env.json``; None when that folder is gone),
  ``exported_at`` (the commit of the export), ``device`` (the run's device);
* ``evaluation``: the run's settings ``n_test_elbo``, ``n_test_iwae``, ``k_iwae``, ``n_test_ais``, ``ais_steps``,
  ``ais_chains``, ``SEED``; ``metrics``: the run's stored metrics of this model (the keys of ``final_metrics.json``
  that start with ``<metrics_prefix>_``, e.g. ``vae_32_elbo``, ``asvae_r_neg_elbo``, ``..._log_px``,
  ``..._ais_log_px``: ``{"value", "sem", "n", "implementation", ...}``, nats);
* ``rng_after_training``: torch's global RNG state at the end of training (``{"torch": uint8 tensor}``, plus
  ``"cuda"`` for a GPU run), the state in which the notebook started evaluating this model.

``evaluate`` calls :func:`lib.evaluate.evaluate_elbo`, :func:`lib.evaluate.evaluate_log_px` and
:func:`lib.ais.evaluate_ais` as the notebook does (same arguments, same order, the AIS generator seeded with the
seed) on the first N test images (``lib.data.load_mnist()["test"]``, binarised once with
``lib.data.fixed_binarization(seed=0)``). Without ``--seed`` it first restores ``rng_after_training``, so it makes the
notebook's own random draws: on the run's kind of device, with the run's settings, the re-evaluated numbers equal the
stored ones (difference 0). With ``--seed S`` (or other settings) the draws are fresh, and the difference is Monte
Carlo noise, read in units of the combined standard error.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import pickle
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lib import registry
from lib.notebook import REUSED_TRAINING
from lib.paths import REPRO_DIR
from lib.runs import atomic_write_bytes, git_commit, resolve_device, seed_everything

FORMAT = "avae-weights"  #: the ``format`` entry of every weights file
FORMAT_VERSION = 1  #: the ``format_version`` this module writes and reads
WEIGHTS_DIR = REPRO_DIR / "weights"  #: where committed weights live: <experiment>/<profile>/seed<N>/<model>.pt
MAX_TOTAL_BYTES = 25_000_000  #: the most the committed weights may weigh together (25 MB)
EVALUATION_KEYS = ("n_test_elbo", "n_test_iwae", "k_iwae", "n_test_ais", "ais_steps", "ais_chains")


class WeightsError(ValueError):
    """A run folder that cannot be exported, or a file that is not a readable weights file; the message says why
    and what to do."""


@dataclass(frozen=True)
class Experiment:
    """How one notebook builds its models and stores their metrics.

    build: (config.json as a dict, model name) -> (registry name, keyword options of :func:`lib.registry.build`,
    x_shape and z_dim included), as the notebook's ``build`` function. elbo_metric: the suffix of the ELBO's key in
    ``final_metrics.json`` and its sign there (+1: the ELBO, -1: the negative ELBO).
    """

    build: Callable[[dict, str], tuple[str, dict]]
    elbo_metric: tuple[str, int]


def _build_12(cfg: dict, name: str) -> tuple[str, dict]:  # notebooks/12_avb_mnist.py, build()
    method, z_dim = name.split("-")
    return method, dict(x_shape=(1, 28, 28), z_dim=int(z_dim), arch=cfg["arch"], hidden=cfg["hidden"],
                        noise_dim=cfg["noise_dim"], adversary_hidden=cfg["adversary_hidden"],
                        adversary_kind=cfg["adversary_kind"], adversary_steps=cfg["adversary_steps"])


def _build_21(cfg: dict, name: str) -> tuple[str, dict]:  # notebooks/21_asvae_mnist.py, build()
    return name, dict(x_shape=(1, 28, 28), z_dim=cfg["z_dim"], arch=cfg["arch"], hidden=cfg["hidden"],
                      adversary_hidden=cfg["adversary_hidden"], adversary_steps=cfg["discriminator_steps"],
                      n_flows=cfg["n_flows"])


#: the notebooks whose models can be exported
EXPERIMENTS = {"12_avb_mnist": Experiment(_build_12, ("elbo", 1)),
               "21_asvae_mnist": Experiment(_build_21, ("neg_elbo", -1))}


def notebook_of(experiment: str | None) -> str | None:
    """The key of :data:`EXPERIMENTS` for ``experiment``: itself, or the notebook it is a part of (``<notebook>_<part>``,
    e.g. ``12_avb_mnist_z32`` of the standard profile); None for any other experiment."""
    for name in EXPERIMENTS:
        if experiment == name or (experiment or "").startswith(name + "_"):
            return name
    return None


def build_model(registry_name: str, build_options: dict) -> torch.nn.Module:
    """The untrained method, on the CPU: :func:`lib.registry.build` (``registry_name``, ``**build_options``)."""
    return registry.build(registry_name, **build_options)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise WeightsError(f"{path} not found: {what}")
    return json.loads(path.read_text())


def _model_metrics(metrics: dict, prefix: str, others: list[str]) -> dict:
    """The entries of ``final_metrics.json``'s metrics that belong to ``prefix`` (``asvae_`` but not ``asvae_r_``)."""
    longer = [o for o in others if o != prefix and o.startswith(prefix + "_")]
    return {k: v for k, v in metrics.items()
            if k.startswith(prefix + "_") and not any(k.startswith(o + "_") for o in longer)}


def export_model(run_dir: str | Path, model: str, out: str | Path = WEIGHTS_DIR) -> Path:
    """Write the weights file of one model of a finished run of 12_avb_mnist or 21_asvae_mnist.

    run_dir: ``runs/<experiment>/<stamp>_s<seed>/`` holding ``config.json``, ``env.json``, ``final_metrics.json``
    and ``<model>/ckpt.pt`` (read only). model: a name of the run's ``models`` (e.g. ``"vae-32"``, ``"asvae_r"``).
    out: the root folder; the file goes to ``<out>/<experiment>/<profile>/seed<N>/<model>.pt`` (written atomically).
    returns the file's path.
    raises WeightsError for a folder that is not a finished run of a known experiment, a model the run did not
    train, a missing checkpoint, or a checkpoint that is not at the run's final iteration (``steps``); ValueError
    from :func:`lib.train.load_checkpoint` for a checkpoint of another architecture or variant.
    """
    from lib.train import load_checkpoint

    run_dir = Path(run_dir)
    cfg = _read_json(run_dir / "config.json", "not a run folder (runs/<experiment>/<stamp>_s<seed>/)")
    experiment = cfg.get("experiment")
    if notebook_of(experiment) is None:
        raise WeightsError(f"{run_dir} is a run of {experiment!r}; weights can be exported from runs of "
                           f"{sorted(EXPERIMENTS)}")
    final = _read_json(run_dir / "final_metrics.json",
                       "the run has not finished (resume it: python -m paper_reproductions.run --resume)")
    if final.get("skipped"):
        raise WeightsError(f"{run_dir} was skipped ({final['skipped']}): it trained no model")
    runner = run_dir / "runner.json"
    if runner.is_file() and not json.loads(runner.read_text()).get("ok", True):
        raise WeightsError(f"{runner} records a failed run; export from a run that completed")
    if model not in cfg["models"]:
        raise WeightsError(f"{run_dir} trained the models {cfg['models']}, not {model!r}")
    ckpt = run_dir / model / "ckpt.pt"
    if not ckpt.is_file():
        raise WeightsError(f"{ckpt} not found: the run folder lacks model {model!r}'s checkpoint")
    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").is_file() else {}
    trained_in = run_dir  # a run that re-evaluated another run's trained models (lib.notebook.reuse_training)
    if (run_dir / REUSED_TRAINING).is_file():
        trained_in = Path(json.loads((run_dir / REUSED_TRAINING).read_text())["from"])
        donor_env = trained_in / "env.json"
        env = {**env, "git_commit": json.loads(donor_env.read_text()).get("git_commit") if donor_env.is_file() else None}

    registry_name, options = EXPERIMENTS[notebook_of(experiment)].build(cfg, model)
    method = build_model(registry_name, options)
    step = load_checkpoint(ckpt, method, restore_rng=False)
    if step != cfg["steps"]:
        raise WeightsError(f"{ckpt} is at iteration {step}, not the run's final {cfg['steps']}: the model did not "
                           "finish training; resume the run (python -m paper_reproductions.run --resume) first")
    rng = torch.load(ckpt, map_location="cpu", weights_only=False)["rng"]  # the RNG state at the end of training
    prefix = model.replace("-", "_")
    metrics = _model_metrics(final["metrics"], prefix, [m.replace("-", "_") for m in cfg["models"]])
    if not metrics:
        raise WeightsError(f"{run_dir}/final_metrics.json holds no metrics of {model!r} (keys {prefix}_...)")
    blob = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "experiment": experiment, "profile": cfg["profile"], "seed": int(cfg["seed"]), "model": model,
        "metrics_prefix": prefix, "registry_name": registry_name, "build_options": options,
        "method_config": method.config(), "step": step,
        "state_dict": {k: v.detach().cpu().clone() for k, v in method.state_dict().items()},
        "run": run_dir.name, "trained_in": trained_in.name, "git_commit": env.get("git_commit"),
        "exported_at": git_commit(),
        "device": env.get("device_name"),
        "evaluation": {**{k: int(cfg[k]) for k in EVALUATION_KEYS}, "SEED": int(cfg["seed"])},
        "metrics": metrics,
        "rng_after_training": {"torch": rng["torch"], **({"cuda": list(rng["cuda"])} if "cuda" in rng else {})},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    data = buf.getvalue()
    torch.load(io.BytesIO(data), weights_only=True)  # what others will do; fails here rather than after a commit
    path = Path(out) / experiment / cfg["profile"] / f"seed{int(cfg['seed'])}" / f"{model}.pt"
    atomic_write_bytes(path, data)
    return path


def load_weights(path: str | Path) -> dict:
    """Read a weights file with ``torch.load(weights_only=True)`` onto the CPU and check its format.

    returns the dict described in the module docstring.
    raises WeightsError naming the problem and the fix: missing file, a file that is not a weights file, or one of
    another format version.
    """
    path = Path(path)
    export = "`python -m paper_reproductions.weights export RUN_DIR --models ...`"
    if not path.is_file():
        raise WeightsError(f"{path} not found; the committed weights are under {WEIGHTS_DIR} "
                           f"(<experiment>/<profile>/seed<N>/<model>.pt), or export one from a run folder with {export}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise WeightsError(f"{path} is not a weights file of paper_reproductions.weights: it cannot be read as a "
                           f"torch.save file; pass a file written by {export}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a torch file with objects that weights_only refuses (never unpickled)
        raise WeightsError(f"{path} is not a weights file of paper_reproductions.weights: it holds objects other "
                           "than tensors and plain types, which are not loaded (a training checkpoint ckpt.pt holds "
                           f"NumPy RNG states); a run's checkpoint becomes a weights file with {export}") from err
    except Exception as err:  # not a torch.save file at all, or truncated
        raise WeightsError(f"{path} is not a weights file of paper_reproductions.weights: it cannot be read as a "
                           f"torch.save file ({type(err).__name__}); pass a file written by {export}") from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a weights file of paper_reproductions.weights (no format {FORMAT!r}; "
                           f"pass a file written by {export})")
    if blob.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path} has format version {blob.get('format_version')!r}; this code reads version "
                           f"{FORMAT_VERSION}: use the repository at the commit that wrote it, or export it again")
    return blob


def model_from_weights(blob: dict, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained method of a weights file (:func:`load_weights`): registry.build, then a strict load_state_dict.
    returns it on ``device``, in eval mode. raises RuntimeError (from torch) if the state dict does not fit."""
    method = build_model(blob["registry_name"], blob["build_options"])
    method.load_state_dict(blob["state_dict"], strict=True)
    return method.to(device).eval()


def evaluate_weights(blob: dict, *, n_elbo: int | None = None, n_iwae: int | None = None, k: int | None = None,
                     n_ais: int | None = None, ais_steps: int | None = None, ais_chains: int | None = None,
                     seed: int | None = None, skip_ais: bool = False, device: torch.device | str = "cpu") -> dict:
    """Re-evaluate a weights file's model on the test images, as its notebook does.

    blob: from :func:`load_weights`. n_elbo, n_iwae, n_ais: how many test images (the first N of
    ``fixed_binarization(load_mnist()["test"].images, seed=0)``, at most 10,000); k: IWAE importance samples;
    ais_steps, ais_chains: AIS's annealing steps and chains per image. None: the run's setting (``blob["evaluation"]``).
    seed: None replays the notebook's draws (torch's RNG state at the end of training, AIS generator seeded with the
    run's SEED); an integer seeds everything with it (:func:`lib.runs.seed_everything`, and the AIS generator).
    skip_ais: leave AIS out (the slowest part).
    returns: {"settings": the settings used, "replayed": bool, "elbo", "log_px", "ais" (absent with skip_ais): the
    results of lib.evaluate.evaluate_elbo / evaluate_log_px / lib.ais.evaluate_ais, values in nats}.
    raises ValueError for N outside 1..10,000 and what the lib functions raise for bad settings.
    """
    from lib.ais import evaluate_ais
    from lib.data import fixed_binarization, load_mnist
    from lib.evaluate import evaluate_elbo, evaluate_log_px

    run = blob["evaluation"]
    given = dict(n_test_elbo=n_elbo, n_test_iwae=n_iwae, k_iwae=k, n_test_ais=n_ais, ais_steps=ais_steps,
                 ais_chains=ais_chains, SEED=seed)
    settings = {key: run[key] if value is None else int(value) for key, value in given.items()}
    device = torch.device(device)
    x_test = fixed_binarization(load_mnist()["test"].images, seed=0).to(device)
    for key in ("n_test_elbo", "n_test_iwae", "n_test_ais"):
        if not 1 <= settings[key] <= x_test.shape[0]:
            raise ValueError(f"{key} = {settings[key]}: use 1 to {x_test.shape[0]} test images")
    model = model_from_weights(blob, device)
    replayed = seed is None
    if replayed:  # the notebook evaluates right after fit, in the RNG state its last checkpoint recorded
        torch.set_rng_state(blob["rng_after_training"]["torch"])
        if device.type == "cuda" and "cuda" in blob["rng_after_training"]:
            torch.cuda.set_rng_state_all(blob["rng_after_training"]["cuda"])
    else:
        seed_everything(settings["SEED"])
    out = {"settings": settings, "replayed": replayed}
    out["elbo"] = evaluate_elbo(model, x_test[: settings["n_test_elbo"]])
    out["log_px"] = evaluate_log_px(model, x_test[: settings["n_test_iwae"]], k=settings["k_iwae"])
    if not skip_ais:
        out["ais"] = evaluate_ais(model, x_test[: settings["n_test_ais"]], n_steps=settings["ais_steps"],
                                  n_chains=settings["ais_chains"],
                                  generator=torch.Generator(device=device).manual_seed(settings["SEED"]))
    return out


DOUBLING_TOLERANCE = 0.5  #: issue 19's rule: an AIS step count is long enough when doubling it moves log p(x) by less


def ais_step_study(blob: dict, steps: list[int], *, n_ais: int = 100, ais_chains: int | None = None,
                   device: torch.device | str = "cpu", on_row=None) -> list[dict]:
    """AIS log p(x) of a weights file's model at several step counts on the same test images, with paired differences.

    Each count runs :func:`lib.ais.evaluate_ais` as the notebook does (AIS generator seeded with the run's SEED) from
    the same global RNG state (the run's state at the end of training, which the start distribution's posterior
    samples draw from), so two counts differ by their annealing alone and their difference is paired image by image.
    steps: increasing step counts (e.g. 300 600 1200). n_ais: the first N test images. ais_chains: None = the run's.
    on_row: called with each row as soon as it is computed (the command prints it: long counts take minutes).
    returns: one row per count, {"steps", "value", "sem" (nats, over images), "accept_rate", "seconds", and from the
    second on "minus_previous": (mean, sem) of the per-image difference to the previous count and "doubling_ok"
    (|mean| < :data:`DOUBLING_TOLERANCE`; only when this count is twice the previous one, else None)}.
    raises ValueError for counts that are not increasing integers >= 1, or N outside 1..10,000.
    """
    import time

    from lib.ais import evaluate_ais
    from lib.data import fixed_binarization, load_mnist
    from lib.evaluate import mean_sem

    if not steps or any(int(t) < 1 for t in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"AIS step counts must be increasing integers >= 1, got {steps}")
    device = torch.device(device)
    x_test = fixed_binarization(load_mnist()["test"].images, seed=0).to(device)
    if not 1 <= n_ais <= x_test.shape[0]:
        raise ValueError(f"n_ais = {n_ais}: use 1 to {x_test.shape[0]} test images")
    model = model_from_weights(blob, device)
    chains = int(ais_chains or blob["evaluation"]["ais_chains"])
    rows, previous = [], None
    for t in steps:
        torch.set_rng_state(blob["rng_after_training"]["torch"])
        t0 = time.perf_counter()
        r = evaluate_ais(model, x_test[:n_ais], n_steps=int(t), n_chains=chains,
                         generator=torch.Generator(device=device).manual_seed(int(blob["evaluation"]["SEED"])))
        row = {"steps": int(t), "value": r["value"], "sem": r["sem"], "accept_rate": r["accept_rate"],
               "seconds": round(time.perf_counter() - t0, 1)}
        if previous is not None:
            d = mean_sem(r["log_px"] - previous[1])
            row["minus_previous"] = d
            row["doubling_ok"] = abs(d[0]) < DOUBLING_TOLERANCE if int(t) == 2 * previous[0] else None
        rows.append(row)
        if on_row is not None:
            on_row(row)
        previous = (int(t), r["log_px"])
    return rows


def comparison(blob: dict, result: dict) -> list[dict]:
    """Rows of the stored metric beside the re-evaluated one, in the stored metric's sign and units (nats).

    returns: one dict per quantity, {"quantity", "key" (in final_metrics.json), "stored": (value, sem) or None,
    "now": (value, sem), "n_now" and "n_stored": images, "z": (now - stored) / sqrt(sem_stored^2 + sem_now^2) (nan
    where undefined)}.
    """
    suffix, sign = EXPERIMENTS[notebook_of(blob["experiment"])].elbo_metric
    s = result["settings"]
    rows = [("ELBO" if sign > 0 else "-ELBO", suffix, sign, result["elbo"]),
            (f"IWAE-{s['k_iwae']} log p(x)", "log_px", 1, result["log_px"])]
    if "ais" in result:
        rows.append((f"AIS-{s['ais_steps']} log p(x)", "ais_log_px", 1, result["ais"]))
    table = []
    for name, key_suffix, sgn, r in rows:
        key = f"{blob['metrics_prefix']}_{key_suffix}"
        stored = blob["metrics"].get(key)
        now = (sgn * r["value"], r["sem"])
        row = {"quantity": name, "key": key, "stored": None, "now": now, "n_now": r["n"], "z": math.nan}
        if stored is not None:
            row["stored"], row["n_stored"] = (stored["value"], stored.get("sem", math.nan)), stored.get("n")
            diff = now[0] - stored["value"]
            sem = math.hypot(row["stored"][1], now[1])
            row["z"] = 0.0 if diff == 0 else (diff / sem if sem > 0 else math.nan)
        table.append(row)
    return table


def format_table(blob: dict, result: dict) -> str:
    """The comparison of :func:`comparison` as text, with a header naming the model and the settings."""
    s, run = result["settings"], blob["evaluation"]
    differ = [k for k in s if s[k] != run[k]]
    lines = [f"{blob['experiment']} / {blob['profile']} profile / seed {blob['seed']} / {blob['model']} "
             f"(run {blob['run']}, commit {str(blob.get('git_commit'))[:10]}, trained {blob['step']} iterations)",
             "settings: " + ", ".join(f"{k}={v}" for k, v in s.items())
             + (f"  (the run's: {', '.join(f'{k}={run[k]}' for k in differ)})" if differ else "  (the run's)"),
             "random draws: " + (f"fresh (seed {s['SEED']}): the difference is Monte Carlo noise"
                                 if not result["replayed"] else
                                 f"the run's own (its RNG state at the end of training): on the run's kind of "
                                 f"device ({blob.get('device')}) the values agree exactly" if not differ else
                                 "from the run's RNG state, but with other settings: other draws, and the difference "
                                 "is Monte Carlo noise (another k or number of AIS steps: another bound)"),
             "",
             f"{'quantity [nats]':<22} {'stored ± sem':>20} {'re-evaluated ± sem':>20} {'difference':>11} "
             f"{'difference / sem':>17}"]
    for r in comparison(blob, result):
        stored = "absent" if r["stored"] is None else f"{r['stored'][0]:.3f} ± {r['stored'][1]:.3f}"
        now = f"{r['now'][0]:.3f} ± {r['now'][1]:.3f}"
        diff = "" if r["stored"] is None else f"{r['now'][0] - r['stored'][0]:+.3f}"
        z = "" if math.isnan(r["z"]) else f"{r['z']:+.2f}"
        lines.append(f"{r['quantity']:<22} {stored:>20} {now:>20} {diff:>11} {z:>17}")
    lines += ["", "difference / sem = (re-evaluated - stored) / sqrt(sem_stored^2 + sem_re-evaluated^2); sem: the "
              "standard error over test images. Same draws: 0 (up to floating point on another machine); fresh "
              "draws or other settings: of order 1 for the same model (IWAE and AIS with other k or steps are "
              "other bounds, so a systematic shift is expected)."]
    return "\n".join(lines)


def committed_files(root: str | Path = WEIGHTS_DIR) -> list[Path]:
    """Every ``*.pt`` file under ``root`` (the committed weights), sorted."""
    return sorted(Path(root).rglob("*.pt"))


def check_committed(root: str | Path = WEIGHTS_DIR, max_total_bytes: int = MAX_TOTAL_BYTES) -> dict[Path, int]:
    """Check the weights under ``root``: each loads with :func:`load_weights`, and together they weigh at most
    ``max_total_bytes``. returns path -> size in bytes. raises WeightsError naming the bad file or the total."""
    sizes = {}
    for path in committed_files(root):
        load_weights(path)
        sizes[path] = path.stat().st_size
    total = sum(sizes.values())
    if total > max_total_bytes:
        raise WeightsError(f"the weights under {root} weigh {total / 1e6:.1f} MB together, more than "
                           f"{max_total_bytes / 1e6:.0f} MB: commit fewer models")
    return sizes


def main(argv=None) -> int:
    """The command line (see the module docstring). returns the exit status: 0, or 2 with a message on stderr for
    bad input (a missing or foreign file, a run folder that cannot be exported)."""
    ap = argparse.ArgumentParser(prog="python -m paper_reproductions.weights", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write weights files from a finished run folder (maintainers)")
    ex.add_argument("run_dir", help="runs/<experiment>/<stamp>_s<seed>/ of 12_avb_mnist or 21_asvae_mnist")
    ex.add_argument("--models", nargs="+", required=True, help="names of the run's models, e.g. vae-32 avb_ac-32")
    ex.add_argument("--out", default=str(WEIGHTS_DIR), help=f"root folder (default {WEIGHTS_DIR})")
    ev = sub.add_parser("evaluate", help="re-evaluate a weights file's test log p(x) beside its stored values")
    ev.add_argument("weights", help="a weights file, e.g. paper_reproductions/weights/<experiment>/<profile>/"
                                    "seed<N>/<model>.pt")
    ev.add_argument("--n-elbo", type=int, help="test images for the ELBO (default: the run's)")
    ev.add_argument("--n-iwae", type=int, help="test images for IWAE (default: the run's)")
    ev.add_argument("--k", type=int, help="IWAE importance samples per image (default: the run's)")
    ev.add_argument("--n-ais", type=int, help="test images for AIS (default: the run's)")
    ev.add_argument("--ais-steps", type=int, help="AIS annealing steps (default: the run's)")
    ev.add_argument("--ais-chains", type=int, help="AIS chains per image (default: the run's)")
    ev.add_argument("--seed", type=int, help="fresh draws from this seed (default: replay the run's own draws)")
    ev.add_argument("--threads", type=int, help="torch CPU threads (default: AVAE_NUM_THREADS, else torch's)")
    ev.add_argument("--skip-ais", action="store_true", help="leave AIS out (the slowest part)")
    ev.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    st = sub.add_parser("ais-steps", help="AIS log p(x) at several step counts on the same images: is AIS long enough?")
    st.add_argument("weights", help="a weights file (committed, or exported from a run folder with --out)")
    st.add_argument("--steps", type=int, nargs="+", required=True, help="increasing step counts, e.g. 300 600 1200")
    st.add_argument("--n-ais", type=int, default=100, help="the first N test images (default 100)")
    st.add_argument("--ais-chains", type=int, help="AIS chains per image (default: the run's)")
    st.add_argument("--threads", type=int, help="torch CPU threads (default: AVAE_NUM_THREADS, else torch's)")
    st.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    a = ap.parse_args(argv)
    try:
        if a.command == "ais-steps":
            device = resolve_device(a.device)
            if a.threads:
                torch.set_num_threads(a.threads)
            blob = load_weights(a.weights)
            print(f"{blob['experiment']} / {blob['profile']} profile / seed {blob['seed']} / {blob['model']}: AIS on "
                  f"the first {a.n_ais} test images, {a.ais_chains or blob['evaluation']['ais_chains']} chains")

            def show(r: dict) -> None:
                line = (f"AIS-{r['steps']}: {r['value']:.3f} ± {r['sem']:.3f} nats (acceptance "
                        f"{r['accept_rate']:.2f}, {r['seconds']:.0f} s)")
                if "minus_previous" in r:
                    d, e = r["minus_previous"]
                    line += f"; minus the previous count, paired: {d:+.3f} ± {e:.3f}"
                    if r["doubling_ok"] is not None:
                        line += (f" ({'<' if r['doubling_ok'] else '>='} {DOUBLING_TOLERANCE} nat on doubling: the "
                                 f"previous count is {'long enough' if r['doubling_ok'] else 'too short'})")
                print(line, flush=True)

            ais_step_study(blob, a.steps, n_ais=a.n_ais, ais_chains=a.ais_chains, device=device, on_row=show)
            return 0
        if a.command == "export":
            for model in a.models:
                path = export_model(a.run_dir, model, a.out)
                print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
            return 0
        device = resolve_device(a.device)  # applies AVAE_NUM_THREADS
        if a.threads:
            torch.set_num_threads(a.threads)
        blob = load_weights(a.weights)
        result = evaluate_weights(blob, n_elbo=a.n_elbo, n_iwae=a.n_iwae, k=a.k, n_ais=a.n_ais,
                                  ais_steps=a.ais_steps, ais_chains=a.ais_chains, seed=a.seed, skip_ais=a.skip_ais,
                                  device=device)
        print(format_table(blob, result))
        return 0
    except (WeightsError, ValueError) as err:  # WeightsError; ValueError: a checkpoint of another model, bad N
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

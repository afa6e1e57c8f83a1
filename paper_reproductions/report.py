"""Results as committed data files, and RESULTS.md rendered from them (no notebook runs, no parsing of markdown).

    python -m paper_reproductions.report                         # re-render RESULTS.md from the data files
    python -m paper_reproductions.report --import-runs runs/     # import run folders, then re-render
    python -m paper_reproductions.report --import-runs runs/ --only 11_avb_toy_4points

Data layout (``paper_reproductions/results/``, committed)::

    <experiment>/<profile>/seed<N>.json   one run's final metrics: {experiment, profile, seed, device, metrics,
                                          parameters, notebook, notebook_seconds, fit_seconds, started,
                                          git_commit, run, command}
    <experiment>/<profile>/skipped.json   the newest skip (data absent where it ran): {reason, device, seeds, ...};
                                          shown only while that experiment and profile have no seed file

A run replaces only its own ``seed<N>.json``; a skip never removes or overwrites a seed file. Profiles are whatever
folders the data hold (``quick``, ``full``, later ``standard``): a new profile appears in RESULTS.md as soon as one of
its runs is saved.

RESULTS.md is rendered from these files, ``paper_values.yaml`` (the papers' numbers, with sources) and
``claims.yaml`` (the papers' central claims, how ours is computed from metric keys, and the verdict rule of
:func:`verdict`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import time
from pathlib import Path

import yaml

from lib.notebook import REUSED_TRAINING
from lib.paths import REPRO_DIR
from lib.runs import atomic_write_bytes, json_normalized, run_folder_time, write_json

DATA_DIR = REPRO_DIR / "results"
PAPER_VALUES = REPRO_DIR / "paper_values.yaml"
CLAIMS = REPRO_DIR / "claims.yaml"
RESULTS = REPRO_DIR / "RESULTS.md"
MAX_LINE = 200  #: no line of RESULTS.md is longer (tests/test_report.py checks it)
PROFILE_ORDER = ("quick", "standard", "full")  #: display order of known profiles; others follow alphabetically
PAPERS = ("AVB", "AS-VAE", "BAVAE", "AVAE")
#: metric fields that describe the estimator; numbers with different ones must not be read as comparable
METADATA_KEYS = ("n", "n_real", "n_fake", "split", "weights")
K_SIGMA = 2.0  #: "beyond the uncertainty" means beyond K_SIGMA uncertainties
NEVER_COMPARABLE = ("quick",)  #: profiles never set against the papers' numbers, whatever comparable_profiles says


def comparable(entry: dict, profile: str) -> bool:
    """Whether ``profile``'s numbers may be set against the paper's for a claim or paper-value row ``entry``: its
    ``comparable_profiles`` (default [full]) name it, and it is not in :data:`NEVER_COMPARABLE`."""
    return profile not in NEVER_COMPARABLE and profile in entry.get("comparable_profiles", ["full"])


def command(experiment: str, profile: str, seed: int | None = None) -> str:
    """The command that reruns ``experiment`` in ``profile`` (one seed when ``seed`` is given)."""
    tail = f" --seeds {seed}" if seed is not None else ""
    return f"python -m paper_reproductions.run --profile {profile} --only {experiment}{tail}"


# ---------------------------------------------------------------------------------------------- data files
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def record_from_run(run_dir: str | Path) -> dict | None:
    """The data record of one run folder ``runs/<experiment>/<stamp>_s<seed>/``, or None when it has no readable
    ``final_metrics.json`` or the runner marked it failed. A skip gives a record with ``skipped`` (the reason).

    Reads ``final_metrics.json`` (metrics, device), ``runner.json`` (notebook seconds, parameters, start time; absent
    for runs made outside the runner or still running: then the start time is the folder's stamp), ``env.json`` (git
    commit) and every ``fit_time.json`` below the folder (summed: the training part of the notebook's time, seconds).
    A run that started from another run's trained models (``training_reused.json``, :func:`lib.notebook.reuse_training`)
    counts that run's training seconds in its notebook seconds too, and names the folder they came from.
    """
    run_dir = Path(run_dir)
    fm = _read_json(run_dir / "final_metrics.json")
    if not fm or "profile" not in fm or "seed" not in fm:
        return None
    runner = _read_json(run_dir / "runner.json") or {}
    if runner and not runner.get("ok", True):
        return None
    env = _read_json(run_dir / "env.json") or {}
    fits = [(_read_json(p) or {}).get("seconds") for p in sorted(run_dir.rglob("fit_time.json"))]
    reused = _read_json(run_dir / REUSED_TRAINING)
    seconds = runner.get("seconds")
    if reused and seconds is not None:  # the copied fit_time.json files count as training; so does the notebook total
        seconds = round(float(seconds) + float(reused.get("training_seconds") or 0.0), 1)
    experiment = fm.get("experiment") or run_dir.parent.name
    rec = {"experiment": experiment, "profile": fm["profile"], "seed": int(fm["seed"]),
           "device": fm.get("device", "?"), "metrics": fm.get("metrics", {}),
           "parameters": runner.get("parameters", {}), "notebook": runner.get("notebook", experiment),
           "notebook_seconds": seconds,
           "fit_seconds": round(sum(f for f in fits if f is not None), 1) if fits else None,
           "started": runner.get("started") or _stamp_time(run_dir.name), "git_commit": env.get("git_commit"),
           "run": run_dir.name,
           "command": command(experiment, fm["profile"], int(fm["seed"]))}
    if fm.get("skipped"):
        rec["skipped"] = fm["skipped"]
    if reused:
        rec["training_reused_from"] = Path(reused["from"]).name
    return rec


def _stamp_time(name: str) -> str | None:
    """``"20261129-161154_s0"`` -> ``"2026-11-29T16:11:54"`` (the run folder's local time), None for another name."""
    created = run_folder_time(name)
    return None if created is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created))


def save_record(rec: dict, data_dir: Path | None = None) -> Path:
    """Write ``rec`` (from :func:`record_from_run`) atomically. A result goes to ``seed<N>.json``, replacing only
    that seed's file, and removes the experiment and profile's ``skipped.json`` (it now has results). A skip goes to
    ``skipped.json`` only, leaving every seed file alone. returns the path written."""
    folder = (data_dir or DATA_DIR) / rec["experiment"] / rec["profile"]
    if rec.get("skipped"):
        path = folder / "skipped.json"
        old = _read_json(path) or {}
        stamp = str(rec.get("run") or "").rsplit("_s", 1)[0] or None  # the runner invocation (its folders' stamp)
        # the same skip on another seed of the same invocation: one record for them all; an older invocation's seeds
        # are not carried over (its parameter file may have listed other seeds)
        same = old.get("reason") == rec["skipped"] and stamp is not None and old.get("stamp") == stamp
        seeds = sorted(set(old.get("seeds", [])) | {rec["seed"]}) if same else [rec["seed"]]
        write_json(path, {"experiment": rec["experiment"], "profile": rec["profile"], "reason": rec["skipped"],
                          "device": rec["device"], "seeds": seeds, "stamp": stamp, "started": rec.get("started"),
                          "git_commit": rec.get("git_commit"), "notebook_seconds": rec.get("notebook_seconds"),
                          "command": command(rec["experiment"], rec["profile"])})
        return path
    path = folder / f"seed{rec['seed']}.json"
    write_json(path, rec)
    (folder / "skipped.json").unlink(missing_ok=True)
    return path


def save_run(run_dir: str | Path, data_dir: Path | None = None) -> Path | None:
    """:func:`record_from_run` then :func:`save_record`; None (nothing written) for a failed or unreadable run."""
    rec = record_from_run(run_dir)
    return save_record(rec, data_dir) if rec else None


def stale_records(data_dir: Path | None = None, params_dir: Path | None = None) -> list[str]:
    """Data files that no longer match their parameter file, so that RESULTS.md would mix them with current results:
    a ``seed<N>.json`` whose ``params/<experiment>.<profile>.yaml`` is missing, does not list seed N, or has other
    parameters than the record; a ``skipped.json`` naming seeds the file does not list. Folders of experiments that
    are not runner experiments (``validation/``) are not data of a profile and are left alone.
    returns one line per problem, naming the file and the fix (rerun the seed, or delete the file)."""
    data_dir, params_dir = Path(data_dir or DATA_DIR), Path(params_dir or REPRO_DIR / "params")
    problems = []
    for folder in sorted(p for p in data_dir.glob("*/*") if p.is_dir()):
        experiment, profile = folder.parent.name, folder.name
        params = params_dir / f"{experiment}.{profile}.yaml"
        files = sorted(folder.glob("seed*.json")) + sorted(folder.glob("skipped.json"))
        if not files:
            continue
        if not params.is_file():
            problems.append(f"{folder}: no parameter file {params.name}; delete the folder or restore the file")
            continue
        spec = yaml.safe_load(params.read_text()) or {}
        seeds, parameters = spec.get("seeds", [0]), json.dumps(json_normalized(spec.get("parameters") or {}), sort_keys=True)
        for f in files:
            rec = json.loads(f.read_text())
            if f.name == "skipped.json":
                extra = sorted(set(rec.get("seeds", [])) - set(seeds))
                if extra:
                    problems.append(f"{f}: seeds {extra} not in {params.name} (seeds {seeds}); rerun the experiment")
                continue
            if rec.get("seed") not in seeds:
                problems.append(f"{f}: seed {rec.get('seed')} not in {params.name} (seeds {seeds}); delete the file")
            elif json.dumps(json_normalized(rec.get("parameters") or {}), sort_keys=True) != parameters:
                problems.append(f"{f}: parameters differ from {params.name}; rerun this seed "
                                f"(python -m paper_reproductions.run --profile {profile} --only {experiment} "
                                f"--seeds {rec.get('seed')})")
    return problems


def import_runs(root: str | Path, data_dir: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Import run folders ``root/<experiment>/<stamp>_s<seed>/``: per (experiment, profile, seed) the newest run
    (largest stamp) with results, and per (experiment, profile) the newest skip (every seed of its stamp) unless a
    result is newer. ``only``: experiment names.
    Failed runs and folders without ``final_metrics.json`` (still running) are ignored. returns the files written."""
    newest: dict[tuple, tuple[str, dict]] = {}
    for fm in sorted(Path(root).glob("*/*/final_metrics.json")):
        experiment = fm.parent.parent.name
        if only and experiment not in only:
            continue
        rec = record_from_run(fm.parent)
        if rec is None:
            continue
        stamp = fm.parent.name.rsplit("_s", 1)[0]
        key = (rec["experiment"], rec["profile"], "skip" if rec.get("skipped") else "result", rec["seed"])
        if key not in newest or stamp >= newest[key][0]:
            newest[key] = (stamp, rec)
    written = [save_record(rec, data_dir) for key, (_, rec) in sorted(newest.items(), key=lambda kv: kv[1][0])
               if key[2] == "result"]
    skips = {k: v for k, v in newest.items() if k[2] == "skip"}
    last_skip: dict[tuple[str, str], str] = {}
    for (e, p, _, _), (s, _) in skips.items():
        last_skip[(e, p)] = max(s, last_skip.get((e, p), s))
    for (experiment, profile, _, _), (stamp, rec) in sorted(skips.items(), key=lambda kv: kv[1][0]):
        results = [s for (e, p, k, _), (s, _) in newest.items() if (e, p) == (experiment, profile) and k == "result"]
        if stamp == last_skip[(experiment, profile)] and not any(s > stamp for s in results):
            written.append(save_record(rec, data_dir))  # the newest skip (all its seeds), unless results are newer
    return written


def _profile_key(profile: str):
    return (PROFILE_ORDER.index(profile), "") if profile in PROFILE_ORDER else (len(PROFILE_ORDER), profile)


def load_results(data_dir: Path | None = None) -> dict[tuple[str, str], dict]:
    """(experiment, profile) -> {"runs": seed records sorted by seed, "skipped": skip record or None}, from every
    folder under ``data_dir`` (the committed ``results/`` by default)."""
    root = data_dir or DATA_DIR
    out: dict[tuple[str, str], dict] = {}
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()) if root.exists() else []:
        runs = [r for r in (_read_json(p) for p in folder.glob("seed*.json")) if r and "metrics" in r]
        skipped = _read_json(folder / "skipped.json")
        if runs or skipped:
            out[(folder.parent.name, folder.name)] = {"runs": sorted(runs, key=lambda r: r["seed"]), "skipped": skipped}
    return out


def profiles_of(results: dict) -> list[str]:
    """The profiles present in the data, in :data:`PROFILE_ORDER` then alphabetical order."""
    return sorted({p for _, p in results}, key=_profile_key)


# ---------------------------------------------------------------------------------------------- claims
def load_claims(path: Path | None = None) -> list[dict]:
    """The claims of ``claims.yaml``, one per experiment: a claim with ``experiments: [a, b]`` becomes one claim per
    experiment, its text followed by the experiment's name. raises ValueError for a claim without paper, text,
    quantity, holds_if or experiment(s), or with a holds_if side other than greater / less / equal."""
    path = path or CLAIMS
    out = []
    for claim in (yaml.safe_load(path.read_text()) if path.exists() else None) or []:
        missing = {"paper", "text", "quantity", "holds_if"} - set(claim)
        if missing or not ({"experiment", "experiments"} & set(claim)):
            raise ValueError(f"{path}: claim {claim.get('text')!r} lacks {sorted(missing) or ['experiment']}")
        if claim["holds_if"].get("side") not in ("greater", "less", "equal"):
            raise ValueError(f"{path}: claim {claim['text']!r}: holds_if.side must be greater, less or equal")
        if "experiments" in claim:
            for experiment in claim["experiments"]:
                one = {k: v for k, v in claim.items() if k != "experiments"}
                out.append({**one, "experiment": experiment, "text": f"{claim['text']} (`{experiment}`)"})
        else:
            out.append(claim)
    return out


def claim_value(quantity: dict, metrics: dict) -> tuple[float, float | None] | None:
    """Our value of a claim's ``quantity`` from one run's ``metrics``, with its per-image standard error.

    quantity: ``{metric: a}`` (the value of a), ``{difference: [a, b]}`` (a - b) or ``{ratio: [a, b]}`` (a / b).
    The sem is the metrics' ``sem`` combined in quadrature (for a ratio, relative errors in quadrature: the delta
    method), or None when a metric has none. returns None when a metric is absent or not finite.
    """
    keys = _keys(quantity)
    if not all(k in metrics and _finite(metrics[k].get("value")) for k in keys):
        return None
    vals = [float(metrics[k]["value"]) for k in keys]
    sems = [metrics[k].get("sem") for k in keys]
    sem_ok = all(_finite(s) for s in sems)
    if "metric" in quantity:
        return vals[0], float(sems[0]) if sem_ok else None
    if "difference" in quantity:
        return vals[0] - vals[1], math.hypot(*sems) if sem_ok else None
    r = vals[0] / vals[1]
    return r, abs(r) * math.hypot(sems[0] / vals[0], sems[1] / vals[1]) if sem_ok and 0 not in vals else None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def measure(quantity: dict, runs: list[dict]) -> dict | None:
    """Our value of ``quantity`` over the seed records ``runs``: {value, u, u_kind, seeds}. value is the mean over
    seeds; u the sd over seeds when >= 2 seeds have the metrics (u_kind "sd"), else the one seed's per-image sem in
    quadrature (u_kind "sem"), else None (u_kind "none"). None when no run has the metrics."""
    per_seed = [(r["seed"], claim_value(quantity, r.get("metrics", {}))) for r in runs]
    per_seed = [(s, v) for s, v in per_seed if v is not None]
    if not per_seed:
        return None
    xs = [v[0] for _, v in per_seed]
    mean = sum(xs) / len(xs)
    if len(xs) >= 2:
        u, kind = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)), "sd"
    elif per_seed[0][1][1] is not None:
        u, kind = per_seed[0][1][1], "sem"
    else:
        u, kind = None, "none"
    return {"value": mean, "u": u, "u_kind": kind, "seeds": [s for s, _ in per_seed]}


def verdict(value: float, u: float | None, test: dict, k: float = K_SIGMA) -> tuple[str, str]:
    """Does our ``value`` ± ``u`` support a claim? returns (verdict, short reason).

    test: ``{side: greater|less, threshold: t, size?: s}``: the claim says value > t (or < t), by at least about s
    (the paper's size). "holds" when value is beyond t by more than k·u on the claimed side and, if s is given, not
    smaller than s by more than k·u (consistent with the paper's size); "does not hold" when value is beyond t by
    more than k·u on the other side; else "inconclusive" (within our uncertainty, or the right side but clearly
    smaller than the paper's size). ``{side: equal, value: c, tolerance: e}``: the claim says |value - c| <= e;
    "holds" when |value - c| + k·u <= e, "does not hold" when |value - c| - k·u > e (an equivalence test).
    Without an uncertainty (u None: one seed, metrics without sem) the verdict is "inconclusive".
    """
    if u is None:
        return "inconclusive", "no uncertainty (one seed, metrics without sem)"
    ku = k * u
    side = test["side"]
    if side == "equal":
        c, e = float(test.get("value", 0.0)), float(test["tolerance"])
        dev = abs(value - c)
        if dev + ku <= e:
            return "holds", f"|ours - {c:g}| + {k:g}u <= {e:g}"
        if dev - ku > e:
            return "does not hold", f"|ours - {c:g}| - {k:g}u > {e:g}"
        return "inconclusive", f"|ours - {c:g}| within {k:g}u of the tolerance {e:g}"
    sign = 1.0 if side == "greater" else -1.0
    if side not in ("greater", "less"):
        raise ValueError(f"test side must be greater, less or equal, got {side!r}")
    t = float(test["threshold"])
    op, other = (">", "<") if sign > 0 else ("<", ">")
    margin = sign * (value - t)
    if margin - ku > 0:
        size = test.get("size")
        if size is not None and sign * (value - float(size)) + ku < 0:
            return "inconclusive", f"{op} {t:g} beyond {k:g}u, but below the paper's {float(size):g} beyond {k:g}u"
        return "holds", f"{op} {t:g} by more than {k:g}u" + (f", size consistent with {float(size):g}"
                                                              if size is not None else "")
    if margin + ku < 0:
        return "does not hold", f"{other} {t:g} by more than {k:g}u"
    return "inconclusive", f"within {k:g}u of {t:g}"


def parts_of(experiment: str, profile: str, results: dict) -> list[str]:
    """The experiments of ``profile`` that are parts of ``experiment``: their runs execute the notebook ``experiment``
    with its ``PART`` parameter set, each on a subset of its models (e.g. ``12_avb_mnist_z32`` and ``12_avb_mnist_z8``
    of the standard profile, so that each fits in the profile's time per notebook-seed). A part carries the claims and
    paper values of ``experiment`` for the metrics its runs have."""
    return sorted(e for (e, p), entry in results.items() if p == profile and e != experiment and any(
        r.get("notebook") == experiment and (r.get("parameters") or {}).get("PART") for r in entry["runs"]))


def base_experiment(experiment: str, entry: dict) -> str:
    """The experiment whose part ``experiment`` is (its runs' notebook, :func:`parts_of`), else ``experiment``."""
    for r in entry.get("runs", []):
        if (r.get("parameters") or {}).get("PART") and r.get("notebook"):
            return r["notebook"]
    return experiment


def evaluate_claim(claim: dict, results: dict, profile: str) -> dict:
    """One claim in one profile: {verdict, reason, ours (dict from :func:`measure`) or None}.

    The claim's experiment, or the first of its parts (:func:`parts_of`) whose runs have the quantity's metrics.
    "not run" when no seed record of these in ``profile`` has the metrics (with the skip reason when the experiment
    was skipped there); "not comparable (<profile>)" for a profile outside the claim's ``comparable_profiles``
    (default [full]), its reason saying what the rule would give; else :func:`verdict`.
    """
    entry = results.get((claim["experiment"], profile), {"runs": [], "skipped": None})
    ours = measure(claim["quantity"], entry["runs"])
    source = ""
    for part in ([] if ours is not None else parts_of(claim["experiment"], profile, results)):
        ours = measure(claim["quantity"], results[(part, profile)]["runs"])
        if ours is not None:
            source = f" (`{part}`)"
            break
    if ours is None:
        if entry["runs"]:
            missing = [k for k in _keys(claim["quantity"]) if not any(k in r.get("metrics", {}) for r in entry["runs"])]
            return {"verdict": "not run", "reason": f"no run has {_quantity_keys(claim['quantity'], missing)}",
                    "ours": None}
        reason = "skipped (data absent; the reason is in its section)" if entry.get("skipped") else "no run"
        return {"verdict": "not run", "reason": reason, "ours": None}
    v, why = verdict(ours["value"], ours["u"], claim["holds_if"])
    if not comparable(claim, profile):
        note = " (no uncertainty)" if ours["u"] is None else ""
        return {"verdict": f"not comparable ({profile})", "reason": f"as measured: {v}{note}{source}", "ours": ours}
    return {"verdict": v, "reason": why + source, "ours": ours}


def _keys(quantity: dict) -> list[str]:
    return [quantity["metric"]] if "metric" in quantity else list(quantity.get("difference") or quantity.get("ratio"))


def _quantity_keys(quantity: dict, keys: list[str] | None = None) -> str:
    return " and ".join(f"`{k}`" for k in (keys or _keys(quantity)))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------------------------------------- rendering
def _fmt(v: float, digits: int | str) -> str:
    """``digits``: decimals (int) or a format spec such as ``".1e"``."""
    return f"{v:{digits}}" if isinstance(digits, str) else f"{v:.{digits}f}"


def _duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200
            else f"{seconds / 3600:.1f} h")


def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _wrap(text: str, indent: str = "") -> list[str]:
    """``text`` as lines of at most :data:`MAX_LINE` - 40 characters; continuation lines get ``indent``."""
    return textwrap.wrap(text, width=MAX_LINE - 40, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [""]


def _ours_text(ours: dict, digits, each: list[float] | None = None) -> str:
    """``mean ± u (sd, n seeds)`` or ``value ± sem (sem, 1 seed)``; ``each``: the seeds' values, listed after n."""
    n = len(ours["seeds"])
    if ours["u"] is None:
        return f"{_fmt(ours['value'], digits)} ({n} seed)" if n == 1 else _fmt(ours["value"], digits)
    kind = f"sd, {n} seeds" if ours["u_kind"] == "sd" else "sem, 1 seed"
    if each and n > 1:
        kind += ": " + ", ".join(_fmt(x, digits) for x in each)
    return f"{_fmt(ours['value'], digits)} ± {_fmt(ours['u'], digits)} ({kind})"


def _estimator(metric: dict) -> str:
    return "; ".join([metric.get("implementation") or "?"]
                     + [f"{k} = {metric[k]}" for k in METADATA_KEYS if metric.get(k) not in (None, "")])


def scoreboard(claims: list[dict], results: dict, profiles: list[str]) -> list[str]:
    """The scoreboard: per paper, each claim with the paper's value, ours per profile and the verdict."""
    lines = ["## Scoreboard", ""]
    lines += _wrap(f"Verdicts: **holds** when ours is beyond the claim's threshold by more than {K_SIGMA:g} "
                   "uncertainties on the claimed side (and not clearly smaller than the paper's size where one is "
                   f"claimed); **does not hold** when beyond by more than {K_SIGMA:g} uncertainties on the other "
                   "side; **inconclusive** otherwise (within our uncertainty, or no uncertainty); **not run** when "
                   "no run has the metrics. The uncertainty u is the sd over seeds with >= 2 seeds, else the "
                   "per-image sem of the metrics combined in quadrature (the `ours` cell says which). A profile "
                   "smaller than the paper's (quick) is **not comparable**; its reason says what the rule gives. "
                   "Claims, metrics and thresholds: [`claims.yaml`](claims.yaml).")
    for paper in sorted({c["paper"] for c in claims}, key=lambda p: (PAPERS.index(p) if p in PAPERS else 99, p)):
        lines += ["", f"### {paper}", "", _row(["claim", "paper", "profile", "ours", "verdict", "why"]),
                  "|---|---|---|---|---|---|"]
        sources = []
        for claim in (c for c in claims if c["paper"] == paper):
            digits = claim.get("digits", 2)
            paper_txt = _fmt(claim["paper_value"], digits) if _finite(claim.get("paper_value")) else "—"
            evals = [(p, evaluate_claim(claim, results, p)) for p in profiles]
            shown = [(p, e) for p, e in evals if e["ours"] is not None or e["reason"].startswith("skipped")]
            if not shown:
                why = evals[0][1]["reason"] if evals and evals[0][1]["reason"].startswith("no run has") else \
                    f"no run has {_quantity_keys(claim['quantity'])}"
                shown = [("—", {"verdict": "not run", "reason": why, "ours": None})]
            for i, (p, e) in enumerate(shown):
                ours = _ours_text(e["ours"], digits) if e["ours"] else "—"
                cells = [claim["text"] if i == 0 else "″", paper_txt if i == 0 else "″", p, ours,
                         f"**{e['verdict']}**", e["reason"]]
                over = len(_row(cells)) - MAX_LINE
                if over > 0:  # the reason is cut to fit (claims.yaml keeps claim texts short)
                    cells[-1] = _clip(e["reason"], max(len(e["reason"]) - over, 8))
                lines.append(_row(cells))
            if claim.get("source") and claim["source"] not in sources:
                sources.append(claim["source"])
        if sources:
            lines += ["", "Sources:", ""] + [line for src in sources for line in _wrap(f"- {src}", "  ")]
    return lines


def experiment_section(experiment: str, profile: str, entry: dict, rows: list[dict]) -> list[str]:
    """One experiment in one profile: profile, device, seeds, commit, command and estimators stated once; then
    claim | paper | ours (| ours − paper where the row's ``comparable_profiles`` include ``profile``)."""
    runs, skipped = entry["runs"], entry.get("skipped")
    lines = ["", f"### `{experiment}` · {profile}", ""]
    if not runs:
        lines += _wrap(f"- Skipped on {skipped.get('device', '?')} (seeds {_seeds(skipped.get('seeds', []))}, "
                       f"{(skipped.get('started') or '?')[:10]}): {skipped['reason']}", "  ")
        return lines + [f"- Command: `{skipped.get('command') or command(experiment, profile)}`"]
    devices = sorted({r.get("device", "?") for r in runs})
    commits = sorted({(r.get("git_commit") or "?")[:7] for r in runs})
    dates = sorted({(r.get("started") or "?")[:10] for r in runs})
    lines += _wrap(f"- Device {', '.join(devices)}; seeds {_seeds([r['seed'] for r in runs])}; run {', '.join(dates)} "
                   f"at commit {', '.join(commits)}", "  ")
    lines.append(f"- Command: `{command(experiment, profile)}`")
    estimators: list[str] = []
    table, notes = [], []
    any_comparable = any(comparable(row, profile) for row in rows)
    for row in rows:
        digits = row.get("format") or int(row.get("digits", 2))
        have = [r for r in runs if row["metric"] in r.get("metrics", {})]
        measured = measure({"metric": row["metric"]}, have)
        if measured is None:
            continue
        each = [float(r["metrics"][row["metric"]]["value"]) for r in have if r["seed"] in measured["seeds"]]
        est = _estimator(have[0]["metrics"][row["metric"]])
        if est not in estimators:
            estimators.append(est)
        paper = row.get("paper")
        paper_txt = f"{paper} {row.get('paper_note') or ''}".strip() if paper is not None else "—"
        cells = [row["claim"], paper_txt, _ours_text(measured, digits, each)]
        if any_comparable:
            ok = comparable(row, profile) and _finite(paper)
            cells.append(_fmt(measured["value"] - float(paper), digits) if ok else "—")
        cells.append(f"E{estimators.index(est) + 1}")
        line = _row(cells)
        if len(line) > MAX_LINE:  # too long: without the seeds' values
            cells[2] = _ours_text(measured, digits)
            line = _row(cells)
        if len(line) > MAX_LINE and row.get("paper_note"):  # the paper's note goes under the table
            notes.append(f"{paper}: {row['paper_note']} ({row['claim']})")
            cells[1] = f"{paper} [{len(notes)}]"
            line = _row(cells)
        table.append(line)
    if not table:
        return lines + ["", "No metric of this run is listed in `paper_values.yaml`."]
    head = ["claim", "paper", "ours"] + (["ours − paper"] if any_comparable else []) + ["estimator"]
    lines += ["", _row(head), "|" + "---|" * len(head), *table, ""]
    for i, note in enumerate(notes, 1):
        lines += _wrap(f"[{i}] paper: {note}", "    ")
    lines += [line for i, est in enumerate(estimators, 1) for line in _wrap(f"- E{i}: {est}", "  ")]
    return lines


def _seeds(seeds) -> str:
    return ",".join(str(s) for s in seeds) or "?"


def compute_section(results: dict, profiles: list[str]) -> list[str]:
    """Measured wall time per experiment and profile, from the data files: the notebook per seed (the runner's
    timing), its training part (the summed ``fit_time.json`` of the run), all seeds, and the sum per profile and
    device."""
    rows, totals = [], {}
    for profile in profiles:
        for (experiment, p), entry in sorted(results.items()):
            if p != profile:
                continue
            runs = [r for r in entry["runs"] if _finite(r.get("notebook_seconds"))]
            if runs:
                walls = [r["notebook_seconds"] for r in runs]
                fits = [r["fit_seconds"] for r in runs if _finite(r.get("fit_seconds"))]
                device = ", ".join(sorted({r.get("device", "?") for r in runs}))
                per_seed, fit = _duration(sum(walls) / len(walls)), _duration(sum(fits) / len(fits)) if fits else "—"
                seeds = _seeds([r["seed"] for r in runs])
            elif not entry["runs"] and entry.get("skipped") and _finite(entry["skipped"].get("notebook_seconds")):
                sk = entry["skipped"]
                walls = [sk["notebook_seconds"]] * max(len(sk.get("seeds", [])), 1)  # the newest seed's, per seed
                device, per_seed, fit, seeds = sk.get("device", "?"), _duration(walls[0]) + " (skipped)", "—", \
                    _seeds(sk.get("seeds", []))
            else:
                continue
            rows.append(_row([f"`{experiment}`", profile, device, seeds, per_seed, fit, _duration(sum(walls))]))
            totals[(profile, device)] = totals.get((profile, device), 0.0) + sum(walls)
    if not rows:
        return []
    lines = ["", "## Compute", ""]
    lines += _wrap("Measured wall time of the runs in the data files: the notebook end to end per seed, as timed by "
                   "the runner; its training part, summed over the notebook's models (`fit_time.json`); and the total "
                   "over seeds. A skip (data absent) is shown only where its experiment has no results.")
    lines += ["", _row(["experiment", "profile", "device", "seeds", "notebook per seed", "training (fit) per seed",
                        "all seeds"]), "|---|---|---|---|---|---|---|", *rows, ""]
    lines += [f"Sum, {profile} profile on {dev}: {_duration(sec)} ({sec / 3600:.2f} h)."
              for (profile, dev), sec in totals.items()]
    return lines


def paper_values_section(rows: list[dict]) -> list[str]:
    """The papers' values grouped by experiment and source (a table's row and column follow each value), each source
    named once."""
    lines = ["", "## Paper values and their sources", ""]
    lines += _wrap("Tags as in the project's reference notes: [S] stated in the paper's text, [R] recalled from the "
                   "paper's table, approximate. Full list: [`paper_values.yaml`](paper_values.yaml).")
    for experiment in sorted({r["experiment"] for r in rows if r.get("paper") is not None}):
        groups: dict[str, list[str]] = {}
        for r in rows:
            if r["experiment"] == experiment and r.get("paper") is not None:
                note = f" {r['paper_note']}" if r.get("paper_note") else ""
                source, _, where = (r.get("source") or "source not given").partition(", row ")  # table, then its cell
                where = f"; row {where}" if where else ""
                groups.setdefault(source, []).append(f"{r['claim']} = {r['paper']}{note}{where}")
        lines += ["", f"`{experiment}`:", ""]
        for source, items in groups.items():
            lines += _wrap(f"- {source}:", "  ")
            lines += [line for item in items for line in _wrap(f"  - {item}", "    ")]
    return lines


def build_report(data_dir: Path | None = None) -> str:
    """RESULTS.md's text from the data files, ``paper_values.yaml`` and ``claims.yaml``."""
    results = load_results(data_dir)
    profiles = profiles_of(results)
    rows = yaml.safe_load(PAPER_VALUES.read_text()) or []
    claims = load_claims()
    lines = ["# Results: our numbers beside the papers'", ""]
    lines += _wrap("Rendered by `python -m paper_reproductions.report` (also at the end of every `make reproduce`) "
                   "from "
                   "the committed data files `paper_reproductions/results/<experiment>/<profile>/seed<N>.json`, "
                   "[`paper_values.yaml`](paper_values.yaml) and [`claims.yaml`](claims.yaml); do not edit by hand.")
    lines += ["", f"- Profiles in the data: {', '.join(profiles) or 'none'}."]
    lines += _wrap("- **Quick-profile numbers come from small CPU runs and are not paper-scale results.**", "  ")
    lines += _wrap("- `ours` is the mean ± sd over seeds, or ± the per-image sem with one seed. Estimators differ "
                   "between rows (e.g. the paper's AIS against our IWAE bound): read each section's estimator list "
                   "(E1, E2, ...) before comparing.", "  ")
    lines += [""] + scoreboard(claims, results, profiles)
    lines += ["", "## Results per experiment"]
    experiments = sorted({e for e, _ in results} | {r["experiment"] for r in rows})
    not_run = []
    for experiment in experiments:
        entries = [(p, results[(experiment, p)]) for p in profiles if (experiment, p) in results]
        if not entries:
            not_run.append(experiment)
            continue
        for profile, entry in entries:
            names = (experiment, base_experiment(experiment, entry))  # a part shows its experiment's paper values
            lines += experiment_section(experiment, profile, entry, [r for r in rows if r["experiment"] in names])
    if not_run:
        lines += [""] + _wrap("Not run yet (no data file): " + ", ".join(f"`{e}`" for e in not_run) + ".")
    lines += compute_section(results, profiles)
    lines += paper_values_section(rows)
    return "\n".join(lines) + "\n"


def write_report(data_dir: Path | None = None) -> Path:
    """Render and atomically write RESULTS.md. returns its path."""
    atomic_write_bytes(RESULTS, build_report(data_dir).encode())
    return RESULTS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--import-runs", metavar="RUNS_DIR",
                    help="import run folders RUNS_DIR/<experiment>/<stamp>_s<seed>/ "
                    "(the newest per experiment, profile and seed) into the data files first")
    ap.add_argument("--only", nargs="*", help="with --import-runs: only these experiments")
    args = ap.parse_args(argv)
    if args.import_runs:
        if not Path(args.import_runs).is_dir():
            print(f"error: {args.import_runs} is not a folder", file=sys.stderr)
            return 2
        for path in sorted(set(import_runs(args.import_runs, only=args.only))):  # a skip of n seeds: one file
            print(f"imported {path}")
    print(f"wrote {write_report()}")
    for problem in stale_records():  # shown, not fatal: the data files are the record; the test suite fails on them
        print(f"warning: stale data file: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

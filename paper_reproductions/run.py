"""Batch runner: execute every notebook with papermill and regenerate ``paper_reproductions/RESULTS.md``.

    python -m paper_reproductions.run                    # every experiment, profile resolved (auto)
    python -m paper_reproductions.run --profile quick --only 11_avb_toy_4points --seeds 0 1 2
    python -m paper_reproductions.run --results-only     # rebuild RESULTS.md from runs/ on disk

For each parameter file ``params/<experiment>.<profile>.yaml`` of the chosen profile, and for each
of its seeds, the notebook ``notebooks/<notebook>.py`` is read with jupytext, executed by papermill
with the file's parameters plus ``PROFILE``, ``SEED`` and ``RUN_DIR``, and stored executed as
``runs/<experiment>/<stamp>_s<seed>/<notebook>.ipynb`` next to the run's ``final_metrics.json``.
Every notebook runs even when one fails; the runner then exits 1 naming each failed notebook and cell. A notebook
that stops with ``lib.runs.ExperimentSkipped`` (its data are absent here) is a clean skip, listed in RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

import yaml

from lib.notebook import ParameterError, check_parameters, notebook_defaults
from lib.paths import NOTEBOOKS_DIR, REPRO_DIR, runs_dir
from lib.runs import PROFILES, atomic_write_bytes, resolve_profile, write_json

PARAMS_DIR = REPRO_DIR / "params"
PAPER_VALUES = REPRO_DIR / "paper_values.yaml"
RESULTS = REPRO_DIR / "RESULTS.md"
RESERVED = {"PROFILE", "SEED", "RUN_DIR"}
SPEC_KEYS = ("notebook", "profile", "seeds", "parameters")  #: the keys a parameter file may have


class ParamFileError(ValueError):
    """A parameter file names an unknown notebook, profile or parameter."""


def load_param_files(profile: str, only: list[str] | None = None) -> list[dict]:
    """Parameter files of ``profile``, sorted by notebook; each {experiment, notebook, seeds, parameters, path}.

    raises ParamFileError for a file that is not YAML, not a mapping, has a key other than :data:`SPEC_KEYS` (e.g. a
    misspelt ``parameters``, which would otherwise be ignored), seeds that are not integers, parameters that are not
    a mapping, a missing notebook, a parameter that the notebook's parameters cell does not define or a ``SETTINGS``
    mapping without exactly its keys (:func:`lib.notebook.check_parameters`), a wrong profile, or an unknown
    experiment in ``only``.
    """
    specs = []
    for path in sorted(PARAMS_DIR.glob(f"*.{profile}.yaml")):
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ParamFileError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(spec, dict):
            raise ParamFileError(f"{path}: must be a mapping with keys {SPEC_KEYS}, got a {type(spec).__name__}")
        unknown_keys = set(spec) - set(SPEC_KEYS)
        if unknown_keys:
            raise ParamFileError(f"{path}: unknown key(s) {sorted(map(str, unknown_keys))}; a parameter file has only "
                                 f"{SPEC_KEYS} (notebook parameters go under 'parameters:')")
        seeds = spec.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ParamFileError(f"{path}: seeds must be a list of integers, e.g. [0, 1, 2], got {seeds!r}")
        if not isinstance(spec.get("parameters") or {}, dict):
            raise ParamFileError(f"{path}: parameters must be a mapping NAME: value, got {spec['parameters']!r}")
        experiment = path.name[: -len(f".{profile}.yaml")]
        spec.setdefault("notebook", experiment)
        if spec.get("profile", profile) != profile:
            raise ParamFileError(f"{path}: says profile {spec['profile']!r} but is named for {profile!r}")
        if not (NOTEBOOKS_DIR / f"{spec['notebook']}.py").exists():
            raise ParamFileError(f"{path}: notebook {spec['notebook']!r} not found in {NOTEBOOKS_DIR}")
        try:  # every parameter must be one of the notebook's, and a SETTINGS mapping complete (lib.notebook)
            check_parameters(notebook_defaults(NOTEBOOKS_DIR / f"{spec['notebook']}.py"), spec.get("parameters") or {},
                             str(path))
        except ParameterError as err:
            raise ParamFileError(str(err)) from err
        specs.append({"experiment": experiment, "notebook": spec["notebook"], "seeds": list(spec.get("seeds", [0])),
                      "parameters": dict(spec.get("parameters") or {}), "path": path})
    if only:
        known = {s["experiment"] for s in specs}
        unknown = set(only) - known
        if unknown:
            raise ParamFileError(f"unknown experiment(s) {sorted(unknown)} for profile {profile!r}; known: {sorted(known)}")
        specs = [s for s in specs if s["experiment"] in only]
    return specs


def notebook_parameters(nb) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import ast

    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    return set()


def run_notebook(spec: dict, profile: str, seed: int, stamp: str) -> dict:
    """Execute one notebook for one seed. returns {experiment, seed, run_dir, ok, error, seconds}, also written to
    ``run_dir/runner.json`` (with the profile, parameters and start time) for RESULTS.md's compute table."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(NOTEBOOKS_DIR / f"{spec['notebook']}.py")
    allowed = notebook_parameters(nb)
    reserved = set(spec["parameters"]) & RESERVED
    if reserved:
        raise ParamFileError(f"{spec['path']}: parameter(s) {sorted(reserved)} are set by the runner (--profile, "
                             "--seeds / the file's seeds, and the run folder); remove them from 'parameters'")
    unknown = set(spec["parameters"]) - (allowed - RESERVED)
    if unknown:
        raise ParamFileError(f"{spec['path']}: unknown parameter(s) {sorted(unknown)} for notebook "
                             f"{spec['notebook']}; it takes {sorted(allowed - RESERVED)}")
    run_dir = runs_dir() / spec["experiment"] / f"{stamp}_s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {**spec["parameters"], "PROFILE": profile, "SEED": seed, "RUN_DIR": str(run_dir)}
    out = {"experiment": spec["experiment"], "seed": seed, "run_dir": str(run_dir), "ok": True, "error": None}
    t0, started = time.time(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        papermill.execute_notebook(nb, str(run_dir / f"{spec['notebook']}.ipynb"), parameters=params,
                                   kernel_name="python3", cwd=str(NOTEBOOKS_DIR), progress_bar=False)
    except PapermillExecutionError as err:
        if err.ename == "ExperimentSkipped":  # lib.runs.skip_run: data absent here, recorded in final_metrics.json
            out["skipped"] = err.evalue
        else:
            out.update(ok=False, error=f"cell {err.exec_count}: {err.ename}: {err.evalue}"[:500])
    except Exception as err:  # kernel died, bad notebook, ...
        out.update(ok=False, error=f"{type(err).__name__}: {err}"[:500])
    out["seconds"] = round(time.time() - t0, 1)
    write_json(run_dir / "runner.json", {**out, "notebook": spec["notebook"], "profile": profile,
                                         "parameters": spec["parameters"], "started": started})
    return out


# ---------------------------------------------------------------------------------------------- results
def _latest_runs(experiment: str, profile: str, with_dirs: bool = False) -> list:
    """final_metrics.json of the newest batch (stamp) of ``experiment`` in ``profile``, one per seed
    (``with_dirs``: (run folder, final metrics) pairs)."""
    root = runs_dir() / experiment
    found: dict[str, list] = {}
    for fm in sorted(root.glob("*/final_metrics.json")) if root.exists() else []:
        data = json.loads(fm.read_text())
        if data.get("profile") == profile:
            stamp = fm.parent.name.rsplit("_s", 1)[0]
            found.setdefault(stamp, []).append((fm.parent, data) if with_dirs else data)
    return found[max(found)] if found else []


def _duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200
            else f"{seconds / 3600:.1f} h")


COMPUTE_HEADING = "## Compute"
_COMPUTE_KEY = re.compile(r"^\| `(\S+)` \| (\w+) \|")


def compute_rows(profile: str) -> list[tuple[str, str, float, str]]:
    """Measured wall time of the newest batch of every experiment in ``profile``:
    (experiment, device, total seconds over seeds, table row). The notebook's time comes from the runner's
    ``runner.json``, the training part from every ``fit_time.json`` in the run folder (one per trained model); batches
    run before the runner recorded times are left out."""
    out = []
    for spec_path in sorted(PARAMS_DIR.glob(f"*.{profile}.yaml")):
        experiment = spec_path.name[: -len(f".{profile}.yaml")]
        runs = _latest_runs(experiment, profile, with_dirs=True)
        timed = [(d, fm, json.loads((d / "runner.json").read_text())) for d, fm in runs if (d / "runner.json").exists()]
        if not timed:
            continue
        walls = [r["seconds"] for _, _, r in timed]
        fit_files = [list(d.rglob("fit_time.json")) for d, _, _ in timed]
        fits = [sum(json.loads(f.read_text())["seconds"] for f in files) for files in fit_files]
        n = len(timed)
        seeds = ",".join(str(fm["seed"]) for _, fm, _ in timed)
        skipped = " (skipped: data absent)" if any(fm.get("skipped") for _, fm, _ in timed) else ""
        device = timed[0][1].get("device", "?")
        cells = [f"`{experiment}`", profile, device, seeds, _duration(sum(walls) / n) + skipped,
                 _duration(sum(fits) / n) if any(fit_files) else "—", _duration(sum(walls))]
        out.append((experiment, device, sum(walls), "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"))
    return out


#: metric fields shown after the implementation in RESULTS.md: numbers from different estimators, sample sizes,
#: splits or weights must never be read as if they were comparable
METADATA_KEYS = ("n", "n_real", "n_fake", "split", "weights")


def _fmt(v: float, digits: int | str) -> str:
    """``digits``: decimals (int) or a format spec such as ``".1e"``."""
    return f"{v:{digits}}" if isinstance(digits, str) else f"{v:.{digits}f}"


_ROW_KEY = re.compile(r"--profile (\w+) --only (\S+?)`")
_SKIP_KEY = re.compile(r"^- `(\S+)` \((\w+),")


def _previous_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """(experiment, profile) -> its table rows and skip lines in an earlier RESULTS.md (above its compute table)."""
    out: dict[tuple[str, str], list[str]] = {}
    for line in text.split(f"\n{COMPUTE_HEADING}")[0].splitlines():
        if line.startswith("| ") and (m := _ROW_KEY.search(line)):
            out.setdefault((m.group(2), m.group(1)), []).append(line)
        elif m := _SKIP_KEY.match(line):
            out.setdefault((m.group(1), m.group(2)), []).append(line)
    return out


def build_results(profiles=("quick", "full"), previous: str | None = None) -> str:
    """RESULTS.md text from ``paper_values.yaml`` and the newest runs of each experiment and profile.

    previous: the current RESULTS.md; rows of an (experiment, profile) with no runs on this disk (``runs/`` is
    git-ignored, so a fresh clone has none) are carried over unchanged, with their own device and command.
    """
    rows = yaml.safe_load(PAPER_VALUES.read_text())
    prev = _previous_rows(previous or "")
    carried: set[tuple[str, str]] = set()
    lines = [
        "# Results: our numbers beside the papers'",
        "",
        "Regenerated by `make reproduce` (`python -m paper_reproductions.run`); do not edit by hand.",
        "`ours` is the mean ± sd over seeds, then each seed's value (± sem over test images when there is one seed), of the newest batch",
        "of runs in `runs/`. **Quick-profile numbers come from small CPU runs and are not paper-scale results.**",
        "Estimators differ between rows: read the `metric` column before comparing (e.g. the paper's AIS",
        "log-likelihoods against our importance-sampled IWAE bound, which can only be lower).",
        "Experiments without runs on the machine that rebuilt this file keep their earlier rows (device and command",
        "say where they came from).",
        "",
        "| claim | paper | ours | ours − paper | seeds | profile | device | metric | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for profile in profiles:
        for row in rows:
            runs = _latest_runs(row["experiment"], profile)
            key = (row["experiment"], profile)
            if not runs and key in prev and key not in carried:
                carried.add(key)
                lines += [line for line in prev[key] if line.startswith("| ")]
            vals = [r["metrics"][row["metric"]] for r in runs if row["metric"] in r.get("metrics", {})]
            if not vals:
                continue
            d = row.get("format") or int(row.get("digits", 2))
            xs = [float(v["value"]) for v in vals]
            mean = sum(xs) / len(xs)
            if len(xs) > 1:
                spread = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
                each = ", ".join(_fmt(x, d) for x in xs)
                ours = f"{_fmt(mean, d)} ± {_fmt(spread, d)} (sd; seeds: {each})"
            elif vals[0].get("sem") is not None and not math.isnan(vals[0]["sem"]):
                ours = f"{_fmt(mean, d)} ± {_fmt(vals[0]['sem'], d)} (sem)"
            else:
                ours = _fmt(mean, d)
            paper = row.get("paper")
            delta = _fmt(mean - float(paper), d) if isinstance(paper, (int, float)) else "—"
            paper_txt = f"{paper} {row.get('paper_note', '')}".strip() if paper is not None else "—"
            impl = "; ".join([vals[0].get("implementation", "")]
                             + [f"{key} = {vals[0][key]}" for key in METADATA_KEYS if vals[0].get(key) not in (None, "")])
            seeds = ",".join(str(r["seed"]) for r in runs)
            cmd = f"`python -m paper_reproductions.run --profile {profile} --only {row['experiment']}`"
            cells = [row["claim"], paper_txt, ours, delta, seeds, profile, runs[0].get("device", "?"), impl, cmd]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    skips = [(profile, r) for profile in profiles for exp in sorted({row["experiment"] for row in rows})
             for r in _latest_runs(exp, profile)[:1] if r.get("skipped")]
    skip_lines = [f"- `{r['experiment']}` ({profile}, {r.get('device', '?')}): skipped — {r['skipped']}" for profile, r in skips]
    skip_lines += [line for key in sorted(carried) for line in prev[key] if line.startswith("- ")]
    if skip_lines:
        lines += ["", "Experiments that could not run where they were last run (no numbers above come from them):", ""]
        lines += skip_lines
    lines += ["", "Paper values and their sources (tags as in the project's reference notes: [S] stated in the paper's",
              "text, [R] recalled from the paper's table, approximate):", ""]
    for row in rows:
        if row.get("paper") is not None:
            lines.append(f"- {row['claim']}: {row['paper']} — {row.get('source', '')}")
    lines += compute_section(profiles, previous or "")
    return "\n".join(lines) + "\n"


def compute_section(profiles, previous: str) -> list[str]:
    """RESULTS.md's compute table: :func:`compute_rows` of each profile, earlier rows carried over for experiments
    with no timed runs on this disk, and the sum per profile and device."""
    prev: dict[tuple[str, str], str] = {}
    if COMPUTE_HEADING in previous:
        for line in previous.split(COMPUTE_HEADING, 1)[1].split("\n## ")[0].splitlines():
            if m := _COMPUTE_KEY.match(line):
                prev[(m.group(1), m.group(2))] = line
    rows, totals = [], {}
    for profile in profiles:
        fresh = {exp: (dev, sec, row) for exp, dev, sec, row in compute_rows(profile)}
        for spec_path in sorted(PARAMS_DIR.glob(f"*.{profile}.yaml")):
            exp = spec_path.name[: -len(f".{profile}.yaml")]
            if exp in fresh:
                dev, sec, row = fresh[exp]
            elif (exp, profile) in prev:
                row = prev[(exp, profile)]
                cells = [c.strip() for c in row.strip("|").split(" | ")]
                dev, sec = cells[2], _parse_duration(cells[-1])
            else:
                continue
            rows.append(row)
            totals[(profile, dev)] = totals.get((profile, dev), 0.0) + sec
    if not rows:
        return []
    lines = ["", COMPUTE_HEADING, "",
             "Measured wall time of the runs behind the rows above (the newest batch of each experiment): the notebook end",
             "to end per seed, as timed by the runner (`runs/<experiment>/<stamp>_s<seed>/runner.json`); the training part,",
             "summed over the notebook's models, from `fit`'s `fit_time.json` files; and the total over seeds.",
             "", "| experiment | profile | device | seeds | notebook per seed | training (fit) per seed | all seeds |",
             "|---|---|---|---|---|---|---|", *rows, ""]
    lines += [f"Sum, {profile} profile on {dev}: {_duration(sec)} ({sec / 3600:.2f} h)."
              for (profile, dev), sec in totals.items()]
    return lines


def _parse_duration(text: str) -> float:
    """Seconds from :func:`_duration`'s ``"12 s"``, ``"3.5 min"``, ``"2.1 h"``."""
    value, unit = text.split()[:2]
    return float(value) * {"s": 1, "min": 60, "h": 3600}[unit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "auto"), choices=PROFILES)
    ap.add_argument("--only", nargs="*", help="experiment names (parameter-file stems)")
    ap.add_argument("--seeds", nargs="*", type=int, help="override the seeds of every parameter file")
    ap.add_argument("--results-only", action="store_true", help="only rebuild RESULTS.md from runs on disk")
    args = ap.parse_args(argv)
    profile = resolve_profile(args.profile)
    failures = []
    if not args.results_only:
        try:
            specs = load_param_files(profile, args.only)
        except ParamFileError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        stamp = time.strftime("%Y%m%d-%H%M%S")
        print(f"profile {profile}: {len(specs)} experiment(s) -> {runs_dir()}", flush=True)
        for spec in specs:
            for seed in args.seeds if args.seeds else spec["seeds"]:
                try:
                    res = run_notebook(spec, profile, seed, stamp)
                except ParamFileError as err:
                    print(f"error: {err}", file=sys.stderr)
                    return 2
                status = (f"FAILED at {res['error']}" if not res["ok"]
                          else f"skipped: {res['skipped']}" if res.get("skipped") else "ok")
                print(f"  {spec['experiment']} seed {seed}: {status} ({res['seconds']} s) -> {res['run_dir']}", flush=True)
                if not res["ok"]:
                    failures.append(res)
    atomic_write_bytes(RESULTS, build_results(previous=RESULTS.read_text() if RESULTS.exists() else None).encode())
    print(f"wrote {RESULTS}")
    if failures:
        print(f"\n{len(failures)} notebook run(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f['experiment']} (seed {f['seed']}): {f['error']}\n    executed notebook: {f['run_dir']}",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

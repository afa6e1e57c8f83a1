"""Batch runner: execute every notebook with papermill, save each run's results as a data file, render RESULTS.md.

    python -m paper_reproductions.run                    # every experiment, profile resolved (auto)
    python -m paper_reproductions.run --profile quick --only 11_avb_toy_4points --seeds 0 1 2
    python -m paper_reproductions.run --profile quick --only 12_avb_mnist -p STEPS 100   # a parameter overridden
    python -m paper_reproductions.run --results-only     # re-render RESULTS.md = python -m paper_reproductions.report
    python -m paper_reproductions.run --figures --profile quick [--only 21_asvae_mnist]   # figures from stored runs
    python -m paper_reproductions.run --profile standard --resume --skip-done   # continue a run over several sittings
    python -m paper_reproductions.run --profile quick --jobs 2   # two experiments at a time (make reproduce: JOBS=2)

For each parameter file ``params/<experiment>.<profile>.yaml`` of the chosen profile, and for each
of its seeds, the notebook ``notebooks/<notebook>.py`` is read with jupytext, executed by papermill
with the file's parameters plus ``PROFILE``, ``SEED`` and ``RUN_DIR``, and stored executed as
``runs/<experiment>/<stamp>_s<seed>/<notebook>.ipynb`` next to the run's ``final_metrics.json``. After each run its
results are saved to the committed data file ``paper_reproductions/results/<experiment>/<profile>/seed<N>.json``
(:func:`paper_reproductions.report.save_run`: it replaces only that seed's file), and at the end RESULTS.md is rendered
from the data files (:func:`paper_reproductions.report.write_report`).
With ``--jobs N`` (N > 1), N experiments run at a time, each in its own worker process (an experiment's seeds one
after another in one worker), the longest first by the times in the data files, each kernel on cpu_count // N torch
threads unless ``AVAE_NUM_THREADS`` is set.
Every notebook runs even when one fails; the runner then exits 1 naming each failed notebook and cell. A notebook
that stops with ``lib.runs.ExperimentSkipped`` (its data are absent here) is a clean skip: recorded in ``skipped.json``
of its experiment and profile, it never removes or overwrites results obtained elsewhere.

Three ways to use runs already on disk (``runs/<experiment>/``):

* ``--figures``: redraw every figure from the stored runs, without training or evaluating again. For each experiment
  and seed the newest *completed* run folder of the profile (``runner.json`` ok, with this profile and the parameter
  file's parameters; ``final_metrics.json`` present) is executed again with ``RUN_DIR`` = that folder: the notebook
  runs in rebuild mode (:mod:`lib.notebook`): ``fit`` resumes from each final checkpoint (zero iterations), evaluations
  wrapped in ``nb.cached`` are loaded with their RNG states, the figures go to ``figures/<profile>/``, and
  ``nb.finish`` checks that the recomputed metrics equal the stored ``final_metrics.json`` (a rebuild that computes
  another number fails). The executed notebook is saved as ``<notebook>.figures.ipynb`` in that folder and the
  outcome as ``figures.json``; no data file, no RESULTS.md, no stored record is rewritten. An experiment/seed without
  a completed run is named, the others go on, and the exit status is 1.
* ``--resume``: an experiment/seed whose newest run folder of the profile is unfinished (no ``final_metrics.json``:
  interrupted, or failed) runs again *in that folder*: ``fit`` resumes from ``ckpt.pt`` and cached evaluations are
  reused. Others run afresh.
* ``--skip-done``: an experiment/seed whose data file ``results/<experiment>/<profile>/seed<N>.json`` exists with the
  parameter file's current parameters is not run again (a long profile run over several sittings).
  ``make reproduce`` passes ``--resume --skip-done`` for the standard and full profiles.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import yaml

from lib.notebook import ParameterError, check_parameters, notebook_defaults
from lib.paths import NOTEBOOKS_DIR, REPRO_DIR, runs_dir
from lib.runs import PROFILES, json_normalized, resolve_profile, run_folder_time, write_json
from paper_reproductions import report

PARAMS_DIR = REPRO_DIR / "params"
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


def _ipc_kernel_manager(prefix: str):
    """A kernel manager class whose kernel talks over local Unix sockets named ``prefix``-N instead of TCP: no open
    port, and no "Kernel is running over TCP without encryption" warning from every kernel on the user's terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(transport="ipc", ip=prefix, **kw)

    return IPCKernelManager


def parse_parameter_overrides(pairs: list[list[str]] | None) -> dict:
    """``-p NAME VALUE`` pairs -> {NAME: value}: ``100`` -> 100, ``1e-3`` -> 0.001, ``'[1, 2]'`` -> [1, 2] (YAML),
    ``mnist`` -> "mnist".
    raises ParamFileError for a name the runner sets itself (PROFILE, SEED, RUN_DIR: use --profile / --seeds)."""
    out = {}
    for name, value in pairs or []:
        if name in RESERVED:
            raise ParamFileError(f"-p {name}: set by the runner; use --profile / --seeds instead")
        out[name] = _scalar(value)
    return out


def _scalar(text: str):
    """int, then float (``1e-3``, which YAML 1.1 would leave a string), then YAML (lists, mappings, booleans, str)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _read_json(path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _folders(experiment: str, seed: int) -> list:
    """``runs/<experiment>/*_s<seed>/`` folders, newest (largest stamp) first."""
    root = runs_dir() / experiment
    return sorted((p for p in root.glob(f"*_s{seed}") if p.is_dir()), key=lambda p: p.name, reverse=True) \
        if root.exists() else []


def _same_parameters(a: dict, b: dict) -> bool:
    return json.dumps(json_normalized(a), sort_keys=True) == json.dumps(json_normalized(b), sort_keys=True)


def completed_run(spec: dict, profile: str, seed: int):
    """The newest run folder of ``spec``'s experiment and ``seed`` that the runner completed in ``profile`` with the
    parameter file's parameters (``runner.json``: ok, not skipped, same profile and parameters;
    ``final_metrics.json`` present), or None."""
    for folder in _folders(spec["experiment"], seed):
        runner = _read_json(folder / "runner.json") or {}
        if (runner.get("ok") and not runner.get("skipped") and runner.get("profile") == profile
                and _same_parameters(runner.get("parameters", {}), spec["parameters"])
                and (folder / "final_metrics.json").exists()):
            return folder
    return None


def skipped_run(spec: dict, profile: str, seed: int):
    """The newest run folder of ``spec``'s experiment and ``seed`` in ``profile`` with the parameter file's parameters
    when the runner recorded it as a skip (its data absent here: it drew no figure), else None."""
    for folder in _folders(spec["experiment"], seed):
        runner = _read_json(folder / "runner.json") or {}
        if runner.get("profile") == profile and _same_parameters(runner.get("parameters", {}), spec["parameters"]):
            return folder if runner.get("ok") and runner.get("skipped") else None
    return None


def unfinished_run(spec: dict, profile: str, seed: int):
    """The newest run folder of ``spec``'s experiment and ``seed`` in ``profile`` (its ``config.json``, written when
    the notebook starts), when it has no ``final_metrics.json`` (interrupted, or failed) and was not started with
    other parameters (``runner.json``, when present); else None."""
    for folder in _folders(spec["experiment"], seed):
        config = _read_json(folder / "config.json") or {}
        if config.get("profile") != profile:
            continue
        runner = _read_json(folder / "runner.json")
        if (folder / "final_metrics.json").exists() or \
                (runner is not None and not _same_parameters(runner.get("parameters", {}), spec["parameters"])):
            return None
        return folder
    return None


def is_done(spec: dict, profile: str, seed: int) -> bool:
    """True when the data file ``results/<experiment>/<profile>/seed<N>.json`` exists with ``spec``'s parameters."""
    rec = _read_json(report.DATA_DIR / spec["experiment"] / profile / f"seed{seed}.json")
    return bool(rec) and "metrics" in rec and _same_parameters(rec.get("parameters", {}), spec["parameters"])


def run_notebook(spec: dict, profile: str, seed: int, stamp: str, save: bool = True, run_dir=None,
                 figures: bool = False) -> dict:
    """Execute one notebook for one seed. returns {experiment, seed, run_dir, ok, error, seconds, data_file}; the
    outcome is also written to ``run_dir/runner.json`` (with the profile, parameters and start time), and a run that
    did not fail is saved to its data file (``data_file``: its path, or None; see :mod:`paper_reproductions.report`)
    unless ``save`` is False (runs with parameters overridden on the command line are not the profile's results).

    run_dir: an existing run folder to execute in (default: a new ``runs/<experiment>/<stamp>_s<seed>/``): an
    unfinished one is resumed, a finished one rebuilt (:mod:`lib.notebook`). figures: a rebuild of a finished run:
    the executed notebook goes to ``<notebook>.figures.ipynb`` and the outcome to ``figures.json``; nothing is saved;
    on a CPU the kernel gets the stored run's thread count (``env.json``: ``AVAE_NUM_THREADS``), as sums split over
    another number of threads may round differently.
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(NOTEBOOKS_DIR / f"{spec['notebook']}.py")
    allowed = set(notebook_defaults(NOTEBOOKS_DIR / f"{spec['notebook']}.py"))
    reserved = set(spec["parameters"]) & RESERVED
    if reserved:
        raise ParamFileError(f"{spec['path']}: parameter(s) {sorted(reserved)} are set by the runner (--profile, "
                             "--seeds / the file's seeds, and the run folder); remove them from 'parameters'")
    unknown = set(spec["parameters"]) - (allowed - RESERVED)
    if unknown:
        raise ParamFileError(f"{spec['path']}: unknown parameter(s) {sorted(unknown)} for notebook "
                             f"{spec['notebook']}; it takes {sorted(allowed - RESERVED)}")
    resumed = run_dir is not None and not figures
    run_dir = run_dir or runs_dir() / spec["experiment"] / f"{stamp}_s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {**spec["parameters"], "PROFILE": profile, "SEED": seed, "RUN_DIR": str(run_dir)}
    out = {"experiment": spec["experiment"], "seed": seed, "run_dir": str(run_dir), "ok": True, "error": None}
    t0, started = time.time(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    untimed = _untimed_sitting_seconds(run_dir) if resumed and not (run_dir / "runner.json").exists() else None
    sockets = tempfile.mkdtemp(prefix="avae-kernel-")  # short path: Unix socket names are limited to ~100 characters
    executed = run_dir / f"{spec['notebook']}{'.figures' if figures else ''}.ipynb"
    threads_before = os.environ.get("AVAE_NUM_THREADS")
    stored_env = _read_json(run_dir / "env.json") or {}
    figures_before = os.environ.get("AVAE_FIGURES_DIR")
    # figures/<profile>/ holds one seed's figures, the parameter file's first seed (README and captions name it);
    # other seeds, and runs with parameters overridden (-p: not the profile's run), draw into their own run folder
    first_seed = (spec.get("seeds") or [seed])[0]
    if (not save and not figures) or seed != first_seed:
        os.environ["AVAE_FIGURES_DIR"] = str(run_dir / "figures")
    if figures and str(stored_env.get("device", "")).startswith("cpu") and stored_env.get("cpu_threads"):
        # the stored run's CPU thread count: a float sum split over other threads may round differently
        os.environ["AVAE_NUM_THREADS"] = str(stored_env["cpu_threads"])
    try:
        papermill.execute_notebook(nb, str(executed), parameters=params,
                                   kernel_name="python3", cwd=str(NOTEBOOKS_DIR), progress_bar=False,
                                   kernel_manager_class=_ipc_kernel_manager(os.path.join(sockets, "k")))
    except PapermillExecutionError as err:
        if err.ename == "ExperimentSkipped":  # lib.runs.skip_run: data absent here, recorded in final_metrics.json
            out["skipped"] = err.evalue
        else:
            out.update(ok=False, error=f"cell {err.exec_count}: {err.ename}: {err.evalue}"[:500])
    except Exception as err:  # kernel died, bad notebook, ...
        out.update(ok=False, error=f"{type(err).__name__}: {err}"[:500])
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
        if threads_before is None:
            os.environ.pop("AVAE_NUM_THREADS", None)
        else:
            os.environ["AVAE_NUM_THREADS"] = threads_before
        if figures_before is None:
            os.environ.pop("AVAE_FIGURES_DIR", None)
        else:
            os.environ["AVAE_FIGURES_DIR"] = figures_before
    out["seconds"] = round(time.time() - t0, 1)
    sittings = {}
    if resumed:  # seconds and start over all sittings of this folder, so the compute table counts the whole run
        earlier = _read_json(run_dir / "runner.json") or {}
        sittings = {"resumed": True, "sitting_seconds": out["seconds"]}
        out["seconds"] = round(out["seconds"] + float(earlier.get("seconds") or 0.0), 1)
        if untimed is not None:  # an earlier sitting was killed before it could write runner.json
            sittings["untimed_sitting_seconds"] = untimed
            out["seconds"] = round(out["seconds"] + untimed, 1)
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run_folder_time(run_dir.name)))
        started = earlier.get("started") or started
    record = {**out, "notebook": spec["notebook"], "profile": profile, "parameters": spec["parameters"],
              "started": started, **sittings}
    write_json(run_dir / ("figures.json" if figures else "runner.json"), record)
    out["data_file"] = report.save_run(run_dir) if out["ok"] and save and not figures else None
    return out


def _untimed_sitting_seconds(run_dir: Path) -> float | None:
    """The time an earlier sitting of ``run_dir`` ran when it was killed before writing ``runner.json`` (a machine
    that went away, SIGKILL): from the folder's stamp (``<%Y%m%d-%H%M%S>_s<seed>``, local time, when the runner
    created it) to its newest file, a lower bound (the sitting may have computed on after its last write). Called
    before the resumed sitting writes anything. None when the name has no stamp or the folder holds no file."""
    created = run_folder_time(run_dir.name)
    if created is None:
        return None
    writes = [p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()]
    return round(max(0.0, max(writes) - created), 1) if writes else None


def run_experiment(spec: dict, seeds: list[int], profile: str, stamp: str, options: dict) -> dict:
    """Every seed of one experiment, one after another, as ``main`` asks (``options``: figures, skip_done, resume,
    save); prints one line per seed. returns {"failures": run results that failed, "missing": [(experiment, seed)]
    without a completed run to rebuild figures from, "error": a ParamFileError's text or None}."""
    failures, missing = [], []
    for seed in seeds:
        run_dir, note = None, ""
        if options["figures"]:
            run_dir = completed_run(spec, profile, seed)
            if run_dir is None and skipped_run(spec, profile, seed) is not None:
                print(f"  {spec['experiment']} seed {seed}: skipped where it ran (its data are absent), so it "
                      "has no figures to rebuild", flush=True)
                continue
            if run_dir is None:
                print(f"  {spec['experiment']} seed {seed}: NO COMPLETED RUN of profile {profile} in "
                      f"{runs_dir() / spec['experiment']}; its figures are not rebuilt", flush=True)
                missing.append((spec["experiment"], seed))
                continue
        else:
            if options["skip_done"] and options["save"] and is_done(spec, profile, seed):
                print(f"  {spec['experiment']} seed {seed}: done (its data file has these parameters), "
                      "skipped", flush=True)
                continue
            if options["resume"]:
                run_dir = unfinished_run(spec, profile, seed)
                note = " (resumed)" if run_dir is not None else ""
        try:
            res = run_notebook(spec, profile, seed, stamp, save=options["save"], run_dir=run_dir,
                               figures=options["figures"])
        except ParamFileError as err:
            return {"failures": failures, "missing": missing, "error": str(err)}
        status = (f"FAILED at {res['error']}" if not res["ok"]
                  else f"skipped: {res['skipped']}" if res.get("skipped") else "ok")
        print(f"  {spec['experiment']} seed {seed}: {status}{note} ({res['seconds']} s) -> {res['run_dir']}",
              flush=True)
        if not res["ok"]:
            failures.append(res)
    return {"failures": failures, "missing": missing, "error": None}


#: module state a worker process needs from its parent (tests point these at temporary folders)
_SHARED = (("run", "NOTEBOOKS_DIR"), ("run", "PARAMS_DIR"), ("report", "DATA_DIR"), ("report", "RESULTS"),
           ("report", "PAPER_VALUES"), ("report", "CLAIMS"))


def _worker_init(state: dict, threads: int) -> None:
    """In a worker process of :func:`run_experiments`: the parent's module state, and torch threads per kernel."""
    modules = {"run": sys.modules[__name__], "report": report}
    for (module, name), value in state.items():
        setattr(modules[module], name, value)
    os.environ.setdefault("AVAE_NUM_THREADS", str(threads))


def _expected_seconds(spec: dict, profile: str) -> float:
    """The notebook seconds of the experiment's last recorded run in ``profile`` (its data files), else infinity:
    experiments never timed are started first."""
    folder = report.DATA_DIR / spec["experiment"] / profile
    times = [float(rec.get("notebook_seconds") or 0) for rec in map(_read_json, sorted(folder.glob("*.json")))
             if rec] if folder.is_dir() else []
    return max(times) if times else float("inf")


def run_experiments(tasks: list[tuple[dict, list[int]]], profile: str, stamp: str, options: dict,
                    jobs: int = 1) -> list[dict]:
    """:func:`run_experiment` for each (spec, seeds) of ``tasks``: in order when ``jobs`` is 1; else ``jobs``
    experiments at a time in worker processes (each experiment's seeds stay in one worker, one after another, so no
    two processes write the same data folder), the longest first by the time recorded in the data files, each
    kernel on cpu_count // jobs torch threads unless AVAE_NUM_THREADS says otherwise. returns the outcomes in the
    order of ``tasks``."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs == 1 or len(tasks) < 2:
        return [run_experiment(spec, seeds, profile, stamp, options) for spec, seeds in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    modules = {"run": sys.modules[__name__], "report": report}
    state = {(m, name): getattr(modules[m], name) for m, name in _SHARED}
    order = sorted(range(len(tasks)), key=lambda k: -_expected_seconds(tasks[k][0], profile))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(state, threads)) as pool:
        futures = {k: pool.submit(run_experiment, *tasks[k], profile, stamp, options) for k in order}
        return [futures[k].result() for k in range(len(tasks))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "auto"), choices=PROFILES)
    ap.add_argument("--only", nargs="*", help="experiment names (parameter-file stems)")
    ap.add_argument("--seeds", nargs="*", type=int, help="override the seeds of every parameter file")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="a notebook parameter for every selected experiment, over its parameter file (repeatable; "
                         "VALUE read as YAML, e.g. -p STEPS 100); the notebook rejects names it does not define")
    ap.add_argument("--results-only", action="store_true",
                    help="only re-render RESULTS.md from the data files (same as python -m paper_reproductions.report)")
    ap.add_argument("--figures", action="store_true",
                    help="redraw the figures from each experiment/seed's newest completed run of the profile, without "
                         "training or evaluating again; no data file or RESULTS.md is written")
    ap.add_argument("--resume", action="store_true",
                    help="run an experiment/seed whose newest run of the profile is unfinished again in its folder "
                         "(training resumes from its checkpoints, cached evaluations are reused)")
    ap.add_argument("--skip-done", action="store_true",
                    help="skip an experiment/seed whose data file exists with the parameter file's parameters")
    ap.add_argument("-j", "--jobs", type=int, default=1,
                    help="experiments run at a time, each in its own process with cpu_count // JOBS torch threads "
                         "(unless AVAE_NUM_THREADS is set); the longest first (default 1: one after another)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    profile = resolve_profile(args.profile)
    if args.figures and (args.results_only or args.resume or args.skip_done or args.parameter):
        print("error: --figures redraws stored runs as they are; it takes no --results-only, --resume, --skip-done or "
              "-p", file=sys.stderr)
        return 2
    failures, missing = [], []
    if not args.results_only:
        try:
            specs = load_param_files(profile, args.only)
            overrides = parse_parameter_overrides(args.parameter)
            specs = [{**spec, "parameters": {**spec["parameters"], **overrides}} for spec in specs]
        except ParamFileError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        stamp = time.strftime("%Y%m%d-%H%M%S")
        what = "figures from the stored runs of" if args.figures else "profile"
        print(f"{what} {profile}: {len(specs)} experiment(s) -> {runs_dir()}", flush=True)
        if overrides:
            print(f"parameters {overrides} override the parameter files: these runs stay in {runs_dir()} and are not "
                  "saved to the results data", flush=True)
        options = {"figures": args.figures, "skip_done": args.skip_done, "resume": args.resume,
                   "save": not overrides}
        tasks = [(spec, list(args.seeds if args.seeds else spec["seeds"])) for spec in specs]
        outcomes = run_experiments(tasks, profile, stamp, options, jobs=args.jobs)
        for outcome in outcomes:
            if outcome.get("error"):
                print(f"error: {outcome['error']}", file=sys.stderr)
                return 2
            failures += outcome["failures"]
            missing += outcome["missing"]
    if not args.figures:
        print(f"wrote {report.write_report()}")
    if missing:
        print(f"\n{len(missing)} experiment/seed(s) have no completed run of profile {profile} to rebuild figures from "
              "(run them first: python -m paper_reproductions.run --profile " + profile + " --only ...):",
              file=sys.stderr)
        for experiment, seed in missing:
            print(f"  - {experiment} (seed {seed})", file=sys.stderr)
    if failures:
        print(f"\n{len(failures)} notebook run(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f['experiment']} (seed {f['seed']}): {f['error']}\n    executed notebook: {f['run_dir']}",
                  file=sys.stderr)
    return 1 if failures or missing else 0


if __name__ == "__main__":
    sys.exit(main())

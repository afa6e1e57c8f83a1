"""The opening and closing that every notebook shares, and where each profile's settings live.

A notebook's cell tagged ``parameters`` holds its parameters as ``NAME = literal`` assignments; their values are the
**quick** profile's settings. Every other (experiment, profile) is a parameter file
``paper_reproductions/params/<experiment>.<profile>.yaml`` whose ``parameters:`` override them; a ``SETTINGS`` mapping
given there must be complete (the same keys as the parameters cell's). The batch runner passes those parameters
through papermill; a notebook run by hand (JupyterLab, nbval) with a non-quick profile reads the file itself
(:func:`open_notebook`). ``benchmarks.table_cost`` reads the same files (:func:`profile_parameters`).

A typical notebook::

    # %% tags=["parameters"]
    PROFILE = "auto"
    SEED = 0
    DEVICE = "cpu"
    RUN_DIR = ""
    SETTINGS = {"steps": 2000, "lr": 3e-3}

    # %%
    nb = open_notebook(globals(), "10_avb_objective", seed=True, cpu_threads=1)
    profile, device = nb.profile, nb.device
    run_dir = nb.start(config={**SETTINGS, "tol": TOL})
    ...
    elbo = nb.cached("vae_elbo", lambda: evaluate_elbo(model, x_test))
    ...
    nb.finish(metrics)

**Rebuilding a finished run** (``python -m paper_reproductions.run --figures``): when ``RUN_DIR`` is a folder that
already holds ``final_metrics.json``, the notebook runs in *rebuild* mode: :meth:`Notebook.start` checks the config
against the stored ``config.json`` and writes nothing, ``lib.train.fit`` resumes from each model's final checkpoint
(zero iterations), :meth:`Notebook.cached` returns the stored evaluations (and their RNG states, so that sample grids
come out bit-identical), the figures are drawn again, and :meth:`Notebook.finish` checks the recomputed metrics
against the stored ``final_metrics.json`` instead of writing it. A run folder without ``final_metrics.json`` (an
interrupted run) is resumed the same way and finished normally.
"""
from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from lib.paths import NOTEBOOKS_DIR, REPRO_DIR, set_figure_profile
from lib.runs import (ExperimentSkipped, atomic_write_bytes, finish_run, json_normalized, resolve_device,
                      resolve_profile, rng_state, seed_everything, set_rng_state, skip_run, start_run,
                      write_json)

PARAMS_DIR = REPRO_DIR / "params"
DEFAULT_PROFILE = "quick"  #: the profile whose settings are the parameters cell's own values
INJECTED_HEADER = "# Parameters"  #: first line of the cell papermill injects after the parameters cell

_PARAMETERS_CELL = re.compile(r"^# %%[^\n]*tags=\[[^\]]*[\"']parameters[\"'][^\]]*\][^\n]*\n(.*?)(?=^# %%|\Z)",
                              re.MULTILINE | re.DOTALL)


class ParameterError(ValueError):
    """A parameter that the notebook's parameters cell does not define, or an incomplete ``SETTINGS`` override."""


class RebuildMismatch(RuntimeError):
    """A rebuild of a finished run (:meth:`Notebook.start` / :meth:`Notebook.finish` on a folder with
    ``final_metrics.json``) computed another config or other metrics than the stored ones."""


class CacheError(RuntimeError):
    """A file of ``run_dir/cache/`` that cannot be read back (truncated, foreign), or a value that cannot be stored."""


def parameters_from_source(source: str) -> dict:
    """``{NAME: value}`` of a parameters cell's source (``NAME = literal`` assignments, comments allowed).

    raises ParameterError for any other statement, or a value that is not a Python literal (e.g. ``1 / 16``).
    """
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"a parameters cell holds only NAME = literal assignments, got: {ast.unparse(node)}")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as err:
            raise ParameterError(f"parameter {node.targets[0].id} = {ast.unparse(node.value)} is not a literal") from err
    return out


def notebook_defaults(notebook: str | os.PathLike) -> dict:
    """The parameters cell of a jupytext percent notebook (a name in ``notebooks/`` or a path to its ``.py``).

    raises FileNotFoundError, or ParameterError when there is no cell tagged ``parameters``.
    """
    path = Path(notebook) if str(notebook).endswith(".py") else NOTEBOOKS_DIR / f"{notebook}.py"
    match = _PARAMETERS_CELL.search(path.read_text())
    if not match:
        raise ParameterError(f"{path}: no cell tagged 'parameters'")
    return parameters_from_source(match.group(1))


def check_parameters(defaults: dict, given: dict, where: str) -> None:
    """Check that every name in ``given`` is a parameter of ``defaults`` and that a ``SETTINGS`` mapping in ``given``
    has exactly the keys of the default one (a profile's settings are a complete override, never a patch).

    raises ParameterError naming the unknown names and the known ones, or the missing and unknown SETTINGS keys.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ParameterError(f"{where}: unknown parameter(s) {unknown}; the notebook's parameters are "
                             f"{sorted(defaults)}")
    if "SETTINGS" in given and isinstance(defaults.get("SETTINGS"), dict):
        if not isinstance(given["SETTINGS"], dict):
            raise ParameterError(f"{where}: SETTINGS must be a mapping, got {given['SETTINGS']!r}")
        missing = sorted(set(defaults["SETTINGS"]) - set(given["SETTINGS"]))
        extra = sorted(set(given["SETTINGS"]) - set(defaults["SETTINGS"]))
        if missing or extra:
            raise ParameterError(f"{where}: SETTINGS must give every setting of the parameters cell and no other; "
                                 f"missing {missing}, unknown {extra}")


def params_file(experiment: str, profile: str) -> Path:
    """``paper_reproductions/params/<experiment>.<profile>.yaml``."""
    return PARAMS_DIR / f"{experiment}.{profile}.yaml"


def read_params_file(experiment: str, profile: str) -> dict:
    """The ``parameters:`` mapping of :func:`params_file` (``{}`` when it has none). raises FileNotFoundError."""
    spec = yaml.safe_load(params_file(experiment, profile).read_text()) or {}
    return dict(spec.get("parameters") or {})


def profile_parameters(experiment: str, profile: str, notebook: str | None = None) -> dict:
    """Every parameter ``experiment`` runs with in ``profile``: the notebook's parameters cell, overridden by the
    experiment's parameter file for that profile (checked with :func:`check_parameters`).

    notebook: defaults to ``experiment`` (e.g. ``41_avae_mnist`` for ``41_avae_cifar10``, as the file says).
    raises FileNotFoundError when the parameter file is missing, ParameterError as :func:`check_parameters`.
    """
    spec = yaml.safe_load(params_file(experiment, profile).read_text()) or {}
    defaults = notebook_defaults(notebook or spec.get("notebook", experiment))
    given = dict(spec.get("parameters") or {})
    check_parameters(defaults, given, str(params_file(experiment, profile)))
    return {**defaults, **given}


def _injected_parameters(ns: dict) -> tuple[dict, dict] | None:
    """(parameters cell's values, papermill's injected values) from IPython's input history ``In``, or None when no
    cell of this session starts with ``# Parameters`` (not run by papermill, or not in IPython). Papermill inserts its
    cell right after the parameters cell, so the two are consecutive entries of ``In``."""
    history = ns.get("In")
    if not isinstance(history, list):
        return None
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith(INJECTED_HEADER):
            return parameters_from_source(history[i - 1]), parameters_from_source(history[i])
    return None


@dataclass
class Notebook:
    """One notebook run: its experiment, resolved profile and device, seed, and (after :meth:`start`) run folder.

    ``rebuild`` (set by :meth:`start`): the run folder already held ``final_metrics.json``, so this execution only
    redraws the figures of a finished run and writes none of its records (see the module docstring).
    """

    experiment: str
    profile: str
    device: torch.device
    seed: int
    run_dir_arg: str = ""
    run_dir: Path | None = field(default=None)
    rebuild: bool = False

    def start(self, config: dict, evaluation_keys=(), model_keys=()) -> Path:
        """Create the run folder with ``config.json`` and ``env.json`` (:func:`lib.runs.start_run`), print it.

        When ``RUN_DIR`` names a finished run (it holds ``final_metrics.json``): rebuild mode, nothing is written, and
        ``config`` (with experiment, profile and seed) must equal the stored ``config.json``.
        evaluation_keys: the keys of ``config`` that only the evaluations read (test-set sizes, AIS steps, ...). When
        given, a new run folder whose config differs from a finished run's (same experiment, profile and seed, in
        ``runs/<experiment>/``) in these keys alone starts from that run's trained models
        (:func:`reuse_training`): ``lib.train.fit`` then resumes from their final checkpoints (zero iterations, the
        same RNG state), so only the evaluations run again.
        model_keys: the keys of ``config`` that list the models (a list of names, or a mapping name -> options), for a
        notebook whose models train independently of each other (each from its own seed). A finished run with a subset
        of this run's models (the shared ones' options equal) then donates those models, and only the added ones train.
        returns the folder. raises RebuildMismatch naming the differing keys.
        """
        stored = Path(self.run_dir_arg) if self.run_dir_arg else None
        if stored is not None and (stored / "final_metrics.json").exists():
            self.rebuild, self.run_dir = True, stored
            mine = json_normalized({"experiment": self.experiment, "profile": self.profile, "seed": self.seed,
                                    **config})
            theirs = json.loads((stored / "config.json").read_text())
            differ = sorted(k for k in set(mine) | set(theirs) if _json_text(mine.get(k)) != _json_text(theirs.get(k)))
            if differ:
                raise RebuildMismatch(f"{stored}/config.json differs from this notebook's config in {differ}: the "
                                      "stored run was made with other settings, so its figures cannot be rebuilt")
        else:
            self.run_dir = start_run(self.experiment, profile=self.profile, seed=self.seed, device=self.device,
                                     config=config, run_dir=self.run_dir_arg or None)
            if evaluation_keys or model_keys:
                reused = reuse_training(self.run_dir, evaluation_keys, model_keys)
                if reused:
                    print(f"training reused from {reused['from']} (it differs only in "
                          f"{sorted(reused['differs_in'])}): models {reused['models']} resume from their final "
                          "checkpoints")
        print(f"profile={self.profile} device={self.device} seed={self.seed} run_dir={self.run_dir}"
              + (" (rebuild of a finished run: nothing is retrained or rewritten)" if self.rebuild else ""))
        return self.run_dir

    def cached(self, key: str, fn):
        """``fn()``, computed once per run folder: the first call stores its result in ``run_dir/cache/<key>.pt``
        together with every RNG state after ``fn`` ran (:func:`lib.runs.rng_state`); a later call (a resumed or
        rebuilt run) loads the result and restores those RNG states, so that everything drawn afterwards (sample
        grids) is bit-identical to the first run.

        key: unique within the notebook (e.g. ``f"{name}_ais"``); letters, digits, ``_ - .``. fn: no arguments;
        returns dicts / lists / tuples / tensors / numbers / strings / None (``torch.load(weights_only=True)``: no
        pickled modules or NumPy objects); tensors come back on the device they were on (on the CPU where CUDA is
        absent). Written atomically (:func:`lib.runs.atomic_write_bytes`).
        raises CacheError for a file that cannot be read back (truncated or foreign: delete it to recompute; a file is
        never silently recomputed) and for a result that cannot be stored; ValueError for a bad key; RuntimeError
        before :meth:`start`.
        """
        if self.run_dir is None:
            raise RuntimeError("Notebook.cached needs the run folder: call nb.start(config) first")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key) or key.startswith("."):
            raise ValueError(f"cache key {key!r}: use letters, digits and _ - . (not first)")
        path = self.run_dir / "cache" / f"{key}.pt"
        if path.exists():
            try:
                blob = torch.load(path, map_location=None if torch.cuda.is_available() else "cpu", weights_only=True)
                value, state = blob["value"], blob["rng"]
            except Exception as err:  # truncated, foreign, or holding objects that weights_only refuses
                raise CacheError(f"{path} cannot be read back ({type(err).__name__}: {err}); delete it to recompute "
                                 "this evaluation") from err
            set_rng_state(_rng_from_storable(state))
            return value
        value = fn()
        buf = io.BytesIO()
        torch.save({"key": key, "value": value, "rng": _rng_to_storable(rng_state())}, buf)
        data = buf.getvalue()
        try:
            torch.load(io.BytesIO(data), weights_only=True)
        except Exception as err:
            raise CacheError(f"the result of {key!r} cannot be stored as plain data ({type(err).__name__}: {err}); "
                             "return dicts, lists, tensors, numbers and strings") from err
        atomic_write_bytes(path, data)
        return value

    def finish(self, metrics: dict, skipped: str | None = None) -> dict:
        """Write ``final_metrics.json`` (:func:`lib.runs.finish_run`). returns what was written.

        In rebuild mode: writes nothing; the recomputed ``metrics`` (and ``skipped``) must equal the stored ones,
        except the values of wall times (an entry whose ``implementation`` starts with ``"wall time"``), which are
        only required to be present in both. returns the stored record. raises RebuildMismatch naming the differing metrics.
        """
        if self.rebuild:
            stored = json.loads((self.run_dir / "final_metrics.json").read_text())
            mine = json_normalized(metrics)
            differ = sorted(k for k in set(mine) | set(stored["metrics"])
                            if _json_text(mine.get(k, "<absent>")) != _json_text(stored["metrics"].get(k, "<absent>"))
                            and not (_is_wall_time(mine.get(k)) and _is_wall_time(stored["metrics"].get(k))))
            if differ or skipped != stored.get("skipped"):
                raise RebuildMismatch(f"the rebuild of {self.run_dir} computed other metrics than its "
                                      f"final_metrics.json: {differ or 'skipped'}; e.g. "
                                      + "; ".join(f"{k}: {mine.get(k)} vs stored {stored['metrics'].get(k)}"
                                                  for k in differ[:3]))
            print(f"rebuild: the {len(mine)} recomputed metrics equal {self.run_dir}/final_metrics.json")
            return stored
        return finish_run(self.run_dir, self.experiment, profile=self.profile, seed=self.seed, device=self.device,
                          metrics=metrics, skipped=skipped)

    def skip(self, reason: str) -> None:
        """Record a skip and stop the notebook (:func:`lib.runs.skip_run`; in rebuild mode nothing is recorded).
        raises ExperimentSkipped, always."""
        if self.rebuild:
            print(f"SKIPPED: {reason}")
            raise ExperimentSkipped(reason)
        skip_run(self.run_dir, self.experiment, profile=self.profile, seed=self.seed, device=self.device, reason=reason)


REUSED_TRAINING = "training_reused.json"  #: written in a run folder whose models were trained in another one


def reuse_training(run_dir: str | os.PathLike, evaluation_keys, model_keys=()) -> dict | None:
    """Start a fresh run folder from a finished run's trained models when the two differ in evaluation settings only,
    or in models added.

    The donor: the newest other folder of ``runs_dir()/<experiment>/`` with ``final_metrics.json`` (not a skip) whose
    ``config.json`` equals ``run_dir``'s (experiment, profile and seed included) on every key except
    ``evaluation_keys`` and ``model_keys``; on each of ``model_keys`` (a list of model names, or a mapping from name to
    options) the donor's value must be contained in this run's: its names a subset, each shared name's options equal.
    So a run that adds a model reuses the others; one that drops or changes a model's options does not. Declare
    ``model_keys`` only when each model's training is independent of which other models the run trains (each seeded
    on its own). Every model subfolder of the donor that holds a finished fit (``ckpt.pt`` and
    ``fit_time.json``) is copied whole (checkpoint, ``fit_config.json``, ``fit_time.json``, ``metrics.jsonl``), so
    ``lib.train.fit`` resumes at its last iteration with the RNG state the donor had there: evaluations that did not
    change come out bit-identical to the donor's. ``training_reused.json`` records the donor, the models, the differing
    keys (``{key: [donor's, this run's]}``) and the donor's training seconds (summed ``fit_time.json``: the compute
    table counts them, :mod:`paper_reproductions.run`).
    run_dir: a folder just created by :func:`lib.runs.start_run` (its ``config.json`` written). Does nothing (returns
    None) when the folder already holds a checkpoint or a ``training_reused.json`` (a resumed run), or when no donor
    exists. returns the record written. Copies go through a hidden temporary folder, moved in model by model.
    """
    run_dir = Path(run_dir)
    evaluation_keys, model_keys = set(evaluation_keys), set(model_keys)
    if (run_dir / REUSED_TRAINING).exists() or any(p.parent.name[:1] != "." for p in run_dir.glob("*/ckpt.pt")):
        return None
    mine = json.loads((run_dir / "config.json").read_text())
    donor = differs_in = None
    for other in sorted(run_dir.parent.glob(f"*_s{mine['seed']}"), reverse=True):  # stamps sort by time: newest first
        final = other / "final_metrics.json"
        if other.resolve() == run_dir.resolve() or not final.exists() or not (other / "config.json").exists():
            continue
        if json.loads(final.read_text()).get("skipped"):
            continue
        theirs = json.loads((other / "config.json").read_text())
        differ = {k for k in set(mine) | set(theirs) if _json_text(mine.get(k)) != _json_text(theirs.get(k))}
        if differ and differ <= evaluation_keys | model_keys and all(
                _contains(mine.get(k), theirs.get(k)) for k in differ & model_keys - evaluation_keys):
            donor, differs_in = other, {k: [theirs.get(k), mine.get(k)] for k in sorted(differ)}
            break
    if donor is None:
        return None
    models = sorted(p.parent.name for p in donor.glob("*/ckpt.pt") if (p.parent / "fit_time.json").exists())
    tmp = run_dir / ".reuse-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    seconds = 0.0
    for name in models:  # copy everything first, then move it in: an interruption leaves no half-copied model
        shutil.copytree(donor / name, tmp / name)
        seconds += float(json.loads((donor / name / "fit_time.json").read_text()).get("seconds") or 0.0)
    for name in models:
        shutil.rmtree(run_dir / name, ignore_errors=True)
        os.replace(tmp / name, run_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)
    record = {"from": str(donor), "models": models, "differs_in": differs_in, "training_seconds": round(seconds, 1)}
    write_json(run_dir / REUSED_TRAINING, record)
    return record


def _contains(mine, theirs) -> bool:
    """Whether a model list / mapping ``theirs`` (a donor's) is contained in ``mine``: names a subset, and for a
    mapping each shared name's value equal."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return all(k in mine and _json_text(mine[k]) == _json_text(v) for k, v in theirs.items())
    if isinstance(mine, list) and isinstance(theirs, list):
        return set(map(_json_text, theirs)) <= set(map(_json_text, mine))
    return False


def _is_wall_time(entry) -> bool:
    """A metric that measures wall time (its ``implementation`` says so): it differs from run to run by nature."""
    return isinstance(entry, dict) and str(entry.get("implementation", "")).startswith("wall time")


def _json_text(value) -> str:
    """Canonical JSON text: compares NaN equal to NaN (as stored), and floats exactly (repr round-trips)."""
    return json.dumps(value, sort_keys=True)


def _rng_to_storable(state: dict) -> dict:
    """:func:`lib.runs.rng_state` with NumPy's key array as a tensor (``weights_only`` loading refuses arrays)."""
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    return {**state, "numpy": (kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(gauss))}


def _rng_from_storable(state: dict) -> dict:
    import numpy as np

    kind, keys, pos, has_gauss, gauss = state["numpy"]
    return {**state, "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)}


def open_notebook(ns: dict, experiment: str, *, notebook: str | None = None, seed: bool = False,
                  cpu_threads: int | None = None) -> Notebook:
    """Check and complete the parameters in ``ns`` (the notebook's ``globals()``), then resolve profile and device.

    1. Under papermill: every injected parameter must be one of the parameters cell's, and an injected ``SETTINGS``
       complete (:func:`check_parameters`); a misspelt ``-p PROFLE quick`` stops here instead of running on defaults.
    2. When the profile (``PROFILE``, resolved by :func:`lib.runs.resolve_profile`) is not quick or ``experiment`` is
       not the notebook's own (e.g. ``41_avae_cifar10``): the parameters of ``params/<experiment>.<profile>.yaml``
       are assigned in ``ns`` (in JupyterLab or nbval, e.g. ``PROFILE = "auto"`` resolving to full on a GPU), except
       those that papermill injected (the runner injects the file's own; ``-p STEPS 100`` keeps its 100).
    3. Figures go to ``figures/<profile>/`` from now on (:func:`lib.paths.set_figure_profile`).
    4. ``DEVICE`` is resolved (:func:`lib.runs.resolve_device`, which applies ``AVAE_NUM_THREADS``); then, in this
       order, ``seed``: :func:`lib.runs.seed_everything` (``SEED``), and ``cpu_threads``: torch's thread count on a CPU.

    ns needs PROFILE, SEED, DEVICE and RUN_DIR. notebook: the notebook's name (default ``experiment``).
    returns a :class:`Notebook`. raises ParameterError (unknown parameter, incomplete SETTINGS), FileNotFoundError (a
    non-quick profile without a parameter file), ValueError / RuntimeError from the profile and device.
    """
    notebook = notebook or experiment
    injected = _injected_parameters(ns)
    if injected is not None:
        check_parameters(injected[0], injected[1], f"notebook {notebook} (papermill parameters)")
    profile = resolve_profile(ns["PROFILE"])
    set_figure_profile(profile)
    if profile != DEFAULT_PROFILE or experiment != notebook:
        path = params_file(experiment, profile)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: profile {profile!r} of {experiment} has no settings")
        given = read_params_file(experiment, profile)
        if injected is not None:
            known = injected[0]
        else:
            source = NOTEBOOKS_DIR / f"{notebook}.py"
            known = notebook_defaults(source) if source.exists() else {k: v for k, v in ns.items() if k.isupper()}
        check_parameters(known, given, str(path))
        given = {k: v for k, v in given.items() if injected is None or k not in injected[1]}  # papermill's -p wins
        ns.update(given)
        if given:
            print(f"parameters of {path.name}: {', '.join(sorted(given))}")
    device = resolve_device(ns["DEVICE"])
    if seed:
        seed_everything(ns["SEED"])
    if cpu_threads and device.type == "cpu":
        torch.set_num_threads(cpu_threads)  # tiny nets: thread start-up costs more than it saves on a shared CPU
    return Notebook(experiment, profile, device, ns["SEED"], ns["RUN_DIR"])

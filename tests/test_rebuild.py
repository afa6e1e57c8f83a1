"""Rebuilding figures from stored runs, and resuming runs: Notebook.cached (results and RNG states stored per run
folder), the rebuild mode of Notebook.start / finish, figures per profile, and the runner's --figures, --resume and
--skip-done on a real (tiny) notebook executed by papermill."""
import json
import random

import numpy as np
import pytest
import torch

from lib import paths
from lib.notebook import CacheError, Notebook, RebuildMismatch, open_notebook
from lib.runs import finish_run, start_run
from paper_reproductions import run


@pytest.fixture(autouse=True)
def _quick_figures():
    yield
    paths.set_figure_profile(paths.DEFAULT_FIGURE_PROFILE)  # open_notebook sets it process-wide


def _nb(tmp_path, **kw) -> Notebook:
    nb = Notebook("80_tiny", "quick", torch.device("cpu"), 0, str(tmp_path / "run"), **kw)
    nb.start(config={"steps": 3})
    return nb


def _draw():
    """One draw of every generator that rng_state covers, then a torch tensor (as an evaluation would leave them)."""
    return random.random(), float(np.random.rand()), torch.randn(3)


def test_cached_returns_the_result_and_restores_every_rng_state(tmp_path):
    """The first call computes and stores; a second Notebook on the same folder, from another RNG state, gets an equal
    result without calling fn, and every draw after it equals the draws after the first call."""
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    first = _nb(tmp_path).cached("eval", lambda: {"value": 1.5, "per_image": torch.randn(5), "n": [1, (2, "a")]})
    after_first = _draw()
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    calls = []
    again = _nb(tmp_path).cached("eval", lambda: calls.append(1))
    assert calls == []
    assert again["value"] == 1.5 and again["n"] == [1, (2, "a")] and torch.equal(again["per_image"], first["per_image"])
    after_again = _draw()
    assert after_again[:2] == after_first[:2] and torch.equal(after_again[2], after_first[2])
    # the same computation without the cache, from the same seed: the cache changes nothing
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    plain = {"value": 1.5, "per_image": torch.randn(5)}
    assert torch.equal(plain["per_image"], first["per_image"])
    assert _draw()[:2] == after_first[:2]


def test_cached_file_is_plain_data_and_a_damaged_one_is_an_error(tmp_path):
    """The file loads with weights_only=True (no pickled objects); a truncated file raises CacheError naming it (it is
    never silently recomputed); a result that is not plain data (a module) is refused before anything is written."""
    nb = _nb(tmp_path)
    nb.cached("elbo", lambda: {"value": torch.tensor(2.0)})
    path = tmp_path / "run" / "cache" / "elbo.pt"
    blob = torch.load(path, weights_only=True)
    assert blob["key"] == "elbo" and set(blob["rng"]) >= {"python", "numpy", "torch"}
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CacheError, match="elbo.pt cannot be read back.*delete it"):
        nb.cached("elbo", lambda: {"value": torch.tensor(2.0)})
    with pytest.raises(CacheError, match="cannot be stored as plain data"):
        nb.cached("module", lambda: torch.nn.Linear(2, 2))
    assert not (tmp_path / "run" / "cache" / "module.pt").exists()
    with pytest.raises(ValueError, match="cache key"):
        nb.cached("../x", lambda: 1)


def test_rebuild_mode_writes_nothing_and_checks_config_and_metrics(tmp_path):
    """On a folder with final_metrics.json: start keeps config.json / env.json and refuses another config; finish
    keeps final_metrics.json, accepts the same metrics (NaN included; a wall time may differ) and names a differing
    one."""
    folder = start_run("80_tiny", profile="quick", seed=0, device=torch.device("cpu"), config={"steps": 3},
                       run_dir=tmp_path / "run")
    wall = {"implementation": "wall time of the notebook after start_run, cpu"}
    finish_run(folder, "80_tiny", profile="quick", seed=0, device="cpu",
               metrics={"a": {"value": 0.1 + 0.2}, "b": {"value": float("nan")}, "runtime_s": {"value": 9.5, **wall}})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    nb = _nb(tmp_path)
    assert nb.rebuild
    nb.finish({"a": {"value": 0.1 + 0.2}, "b": {"value": float("nan")}, "runtime_s": {"value": 1.25, **wall}})
    with pytest.raises(RebuildMismatch, match=r"\['a'\].*0.30000000000000004"):
        nb.finish({"a": {"value": 0.3}, "b": {"value": float("nan")}, "runtime_s": {"value": 1.25, **wall}})
    with pytest.raises(RebuildMismatch, match=r"\['runtime_s'\]"):  # a wall time need not be equal, but present
        nb.finish({"a": {"value": 0.1 + 0.2}, "b": {"value": float("nan")}})
    with pytest.raises(RebuildMismatch, match=r"config.json differs .* \['steps'\]"):
        Notebook("80_tiny", "quick", torch.device("cpu"), 0, str(folder)).start(config={"steps": 4})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_figures_are_kept_per_profile(tmp_path, monkeypatch):
    """figures_dir() is <root>/<profile>/, the profile being the one open_notebook resolved (default quick)."""
    monkeypatch.setenv("AVAE_FIGURES_DIR", str(tmp_path))
    assert paths.figures_dir() == tmp_path / "quick"
    ns = {"PROFILE": "standard", "SEED": 0, "DEVICE": "cpu", "RUN_DIR": ""}
    with pytest.raises(FileNotFoundError):  # no settings for this experiment in the standard profile ...
        open_notebook(ns, "80_not_an_experiment")
    assert paths.figures_dir() == tmp_path / "standard"  # ... but the profile was resolved first
    with pytest.raises(ValueError):
        paths.set_figure_profile("../quick")


# ------------------------------------------------------------------ the runner on a real notebook (papermill)
TINY = '''# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0
DEVICE = "cpu"
RUN_DIR = ""
STEPS = 30
N_EVAL = 50

# %%
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from lib import registry
from lib.evaluate import evaluate_elbo
from lib.notebook import open_notebook
from lib.plotting import savefig
from lib.toys import FourPointSampler, four_points
from lib.train import fit

nb = open_notebook(globals(), "80_tiny", seed=True)
run_dir = nb.start(config={"steps": STEPS, "n_eval": N_EVAL}, evaluation_keys=("n_eval",))
model = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(8,))
hist = fit(model, FourPointSampler(16), steps=STEPS, lr={"model": 1e-2}, run_dir=run_dir / "vae", log_every=5,
           ckpt_every=10, progress=False)


def evaluation():
    with open(Path(run_dir) / "evaluations.log", "a") as fh:  # counts the evaluations actually computed
        fh.write("1\\n")
    return evaluate_elbo(model, four_points().repeat(N_EVAL, 1))


elbo = nb.cached("vae_elbo", evaluation)
if os.environ.get("TINY_STOP"):
    raise RuntimeError("interrupted after the evaluation")

# %%
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([r["step"] for r in hist], [r["model/elbo"] for r in hist])
ax.imshow(torch.rand(4, 4).numpy(), extent=(0, 30, -8, -2), aspect="auto")  # a draw after the evaluation
savefig(fig, "80_tiny")
nb.finish({"elbo": {"value": elbo["value"], "sem": elbo["sem"]}, "draw": {"value": torch.rand(()).item()}})
'''


@pytest.fixture
def tiny(runner_sandbox, monkeypatch):
    """The runner pointed at one tiny notebook (fit, cached evaluation, a figure after a random draw) and at
    temporary runs, figures, results data and RESULTS.md."""
    monkeypatch.setenv("CI", "1")
    return runner_sandbox({"80_tiny": TINY}, {"80_tiny": "notebook: 80_tiny\nprofile: quick\nseeds: [0]\n"})


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_figures_rebuild_a_finished_run_byte_for_byte_without_training(tiny, capsys):
    """A real run, then --figures: the same PNG byte for byte (its content depends on the training curve and on a
    random draw after the evaluation), no iteration trained and no evaluation recomputed, the stored run's files
    untouched (only <notebook>.figures.ipynb and figures.json added), no data file or RESULTS.md rewritten; an
    experiment without a completed run is named and the exit status is 1."""
    assert run.main(["--profile", "quick"]) == 0
    png = tiny / "figures" / "quick" / "80_tiny.png"
    first_png, first_results = png.read_bytes(), _snapshot(tiny / "results")
    results_md = (tiny / "RESULTS.md").read_bytes()
    folder, = (tiny / "runs" / "80_tiny").iterdir()
    stored = _snapshot(folder)
    png.unlink()
    capsys.readouterr()
    assert run.main(["--figures", "--profile", "quick"]) == 0
    assert "80_tiny seed 0: ok" in capsys.readouterr().out
    assert png.read_bytes() == first_png
    after = _snapshot(folder)
    added = set(after) - set(stored)
    assert added == {"80_tiny.figures.ipynb", "figures.json"}, added
    assert {k: v for k, v in after.items() if k in stored} == stored  # fit_time.json, metrics.jsonl, config.json ...
    assert (folder / "evaluations.log").read_text() == "1\n"  # the evaluation was loaded, not computed again
    assert _snapshot(tiny / "results") == first_results and (tiny / "RESULTS.md").read_bytes() == results_md
    # a stored run of another profile, or none at all, is no source: named, exit status 1
    assert run.main(["--figures", "--profile", "quick", "--seeds", "1"]) == 1
    assert "80_tiny (seed 1)" in capsys.readouterr().err


def test_resume_continues_an_interrupted_run_in_its_folder(tiny, monkeypatch, capsys):
    """A run that stops after training and evaluating is run again by --resume in the same folder: no iteration
    trained again, the evaluation loaded from its cache, and the metrics (including a random draw after the
    evaluation) equal those of an uninterrupted run; --skip-done then runs nothing, until the parameters change."""
    monkeypatch.setenv("TINY_STOP", "1")
    assert run.main(["--profile", "quick"]) == 1
    folder, = (tiny / "runs" / "80_tiny").iterdir()
    assert not (folder / "final_metrics.json").exists()
    fit_time = (folder / "vae" / "fit_time.json").read_bytes()
    first_sitting = json.loads((folder / "runner.json").read_text())
    monkeypatch.delenv("TINY_STOP")
    capsys.readouterr()
    assert run.main(["--profile", "quick", "--resume"]) == 0
    assert "80_tiny seed 0: ok (resumed)" in capsys.readouterr().out
    assert [p.name for p in (tiny / "runs" / "80_tiny").iterdir()] == [folder.name]
    assert (folder / "vae" / "fit_time.json").read_bytes() == fit_time
    assert (folder / "evaluations.log").read_text() == "1\n"
    second = json.loads((folder / "runner.json").read_text())  # the compute table counts both sittings
    assert second["resumed"] and second["started"] == first_sitting["started"]
    assert second["seconds"] == round(first_sitting["seconds"] + second["sitting_seconds"], 1)
    resumed = json.loads((folder / "final_metrics.json").read_text())["metrics"]
    data = json.loads((tiny / "results" / "80_tiny" / "quick" / "seed0.json").read_text())
    assert data["metrics"] == resumed
    # an uninterrupted run (a new folder: the newest is finished, so --resume runs afresh)
    assert run.main(["--profile", "quick", "--resume"]) == 0
    newest = max((tiny / "runs" / "80_tiny").iterdir())
    assert newest != folder
    assert json.loads((newest / "final_metrics.json").read_text())["metrics"] == resumed
    capsys.readouterr()
    assert run.main(["--profile", "quick", "--skip-done"]) == 0
    assert "80_tiny seed 0: done" in capsys.readouterr().out
    assert len(list((tiny / "runs" / "80_tiny").iterdir())) == 2
    (tiny / "params" / "80_tiny.quick.yaml").write_text("notebook: 80_tiny\nseeds: [0]\nparameters:\n  STEPS: 20\n")
    assert run.main(["--profile", "quick", "--skip-done"]) == 0
    assert len(list((tiny / "runs" / "80_tiny").iterdir())) == 3


def test_a_resumed_run_counts_the_time_of_a_sitting_that_was_killed(tiny, monkeypatch):
    """A sitting killed before it wrote runner.json (here: its runner.json removed, its files dated as if it ran for
    an hour) is counted in the resumed run's seconds, from the folder's stamp to its newest file: the compute table
    never shows less time than the run's training took."""
    import os
    import time

    monkeypatch.setenv("TINY_STOP", "1")
    assert run.main(["--profile", "quick"]) == 1
    folder, = (tiny / "runs" / "80_tiny").iterdir()
    (folder / "runner.json").unlink()  # as after SIGKILL
    created = time.mktime(time.strptime(folder.name.rsplit("_s", 1)[0], "%Y%m%d-%H%M%S"))
    files = [p for p in folder.rglob("*") if p.is_file()]
    for p in files:
        os.utime(p, (created + 1800, created + 1800))
    os.utime(files[0], (created + 3600, created + 3600))  # the killed sitting's last write: an hour after the stamp
    monkeypatch.delenv("TINY_STOP")
    assert run.main(["--profile", "quick", "--resume"]) == 0
    record = json.loads((folder / "runner.json").read_text())
    assert record["resumed"] and record["untimed_sitting_seconds"] == 3600.0
    assert record["seconds"] == round(record["sitting_seconds"] + 3600.0, 1)
    assert record["started"] == time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))  # the first sitting's
    data = json.loads((tiny / "results" / "80_tiny" / "quick" / "seed0.json").read_text())
    assert data["notebook_seconds"] == record["seconds"]


def test_a_change_of_evaluation_settings_alone_reuses_the_trained_models(tiny, capsys):
    """A parameter file that changes only an evaluation setting (the notebook's evaluation_keys) runs in a new folder
    that starts from the finished run's trained models: its checkpoint and training records are the donor's byte for
    byte (no iteration trained), training_reused.json names the donor, and the compute table counts the donor's
    training. Going back to the first setting reuses again and reproduces the first run's metrics exactly (the
    evaluation and a random draw after it: the RNG state is the checkpoint's). A change of a training setting
    trains afresh."""
    params = tiny / "params" / "80_tiny.quick.yaml"
    assert run.main(["--profile", "quick"]) == 0
    first, = (tiny / "runs" / "80_tiny").iterdir()
    first_metrics = json.loads((first / "final_metrics.json").read_text())["metrics"]
    assert not (first / "training_reused.json").exists()

    params.write_text("notebook: 80_tiny\nseeds: [0]\nparameters:\n  N_EVAL: 70\n")
    capsys.readouterr()
    assert run.main(["--profile", "quick", "--skip-done"]) == 0
    second = max((tiny / "runs" / "80_tiny").iterdir())
    assert second != first and "training reused from" in (second / "80_tiny.ipynb").read_text()
    reused = json.loads((second / "training_reused.json").read_text())
    assert reused["from"] == str(first) and reused["models"] == ["vae"] and reused["differs_in"] == {"n_eval": [50, 70]}
    for name in ("ckpt.pt", "fit_time.json", "fit_config.json", "metrics.jsonl"):
        assert (second / "vae" / name).read_bytes() == (first / "vae" / name).read_bytes(), name
    fit_seconds = json.loads((first / "vae" / "fit_time.json").read_text())["seconds"]
    assert reused["training_seconds"] == round(fit_seconds, 1)
    data = json.loads((tiny / "results" / "80_tiny" / "quick" / "seed0.json").read_text())
    own = json.loads((second / "runner.json").read_text())["seconds"]
    assert data["training_reused_from"] == first.name
    assert data["notebook_seconds"] == round(own + reused["training_seconds"], 1)
    second_metrics = json.loads((second / "final_metrics.json").read_text())["metrics"]
    assert second_metrics["elbo"]["value"] != first_metrics["elbo"]["value"]  # evaluated on 70 copies, not 50

    params.write_text("notebook: 80_tiny\nseeds: [0]\nparameters:\n  N_EVAL: 50\n")
    assert run.main(["--profile", "quick", "--skip-done"]) == 0
    third = max((tiny / "runs" / "80_tiny").iterdir())
    assert json.loads((third / "training_reused.json").read_text())["from"] == str(second)  # the newest donor
    assert json.loads((third / "final_metrics.json").read_text())["metrics"] == first_metrics

    params.write_text("notebook: 80_tiny\nseeds: [0]\nparameters:\n  STEPS: 20\n  N_EVAL: 50\n")
    assert run.main(["--profile", "quick", "--skip-done"]) == 0
    fourth = max((tiny / "runs" / "80_tiny").iterdir())
    assert fourth != third and not (fourth / "training_reused.json").exists()
    assert json.loads((fourth / "vae" / "fit_time.json").read_text())["iterations"] == 20


def test_every_figure_link_in_the_docs_points_to_a_committed_figure():
    """README.md and docs/*.md link figures of figures/<profile>/ that exist (none left at the old figures/x.png)."""
    import re

    links = []
    for doc in [paths.ROOT / "README.md", *sorted((paths.ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]*figures/[^)\s]+\.png)\)", doc.read_text()):
            links.append((doc, target, (doc.parent / target).resolve()))
    assert links, "no figure links found: is the pattern still right?"
    for doc, target, path in links:
        assert path.is_file(), f"{doc.name}: {target} does not exist"
        assert path.parent.parent == paths.ROOT / "figures" and path.parent.name in ("quick", "standard", "full"), target


def _models_run(options: dict, steps=20):
    """A notebook in miniature whose models train independently (each seeded on its own): start with the model list
    and options as model_keys, fit each model, finish with each one's ELBO. returns (run folder, metrics, the
    iterations each fit trained in this folder)."""
    from lib import registry
    from lib.evaluate import evaluate_elbo
    from lib.runs import seed_everything
    from lib.toys import FourPointSampler, four_points
    from lib.train import fit

    nb = Notebook("81_models", "quick", torch.device("cpu"), 0)
    names = list(options)
    run_dir = nb.start(config={"steps": steps, "models": names, "options": options}, model_keys=("models", "options"))
    metrics, trained = {}, {}
    for name in names:
        seed_everything(0)
        model = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(options[name]["hidden"],))
        hist = fit(model, FourPointSampler(16), steps=steps, lr={"model": 1e-2}, run_dir=run_dir / name,
                   log_every=5, ckpt_every=10, progress=False)
        trained[name] = len([r for r in hist if r["step"] > 0])
        metrics[name] = {"value": evaluate_elbo(model, four_points().repeat(20, 1))["value"]}
    nb.finish(metrics)
    return run_dir, metrics


def test_a_run_that_adds_a_model_reuses_the_others(tmp_path, monkeypatch):
    """model_keys: a run whose models are a superset of a finished run's (shared options equal) copies the shared
    models' checkpoints byte for byte and their metrics come out equal; the added model trains, and equals what it
    gives trained alone. A run that changes a shared model's options does not take that donor (an older donor that
    still fits is taken instead); a run with a model list that is no superset of any donor trains everything."""
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
    first, m1 = _models_run({"a": {"hidden": 8}})
    assert not (first / "training_reused.json").exists()
    second, m2 = _models_run({"a": {"hidden": 8}, "b": {"hidden": 6}})
    reused = json.loads((second / "training_reused.json").read_text())
    assert reused["from"] == str(first) and reused["models"] == ["a"]
    assert set(reused["differs_in"]) == {"models", "options"}
    assert (second / "a" / "ckpt.pt").read_bytes() == (first / "a" / "ckpt.pt").read_bytes()
    assert m2["a"] == m1["a"]
    assert json.loads((second / "b" / "fit_time.json").read_text())["iterations"] == 20  # b trained here
    alone, m_alone = _models_run({"b": {"hidden": 6}})  # no donor has only models of {"b"}: trains afresh
    assert not (alone / "training_reused.json").exists() and m_alone["b"] == m2["b"]
    # b's options changed: the newest donor (a, b with hidden 6) does not fit, the first run (a alone) does
    third, m3 = _models_run({"a": {"hidden": 8}, "b": {"hidden": 4}})
    reused = json.loads((third / "training_reused.json").read_text())
    assert reused["from"] == str(first) and reused["models"] == ["a"] and m3["a"] == m1["a"]
    assert m3["b"] != m2["b"]
    # a training setting changed: no donor
    fourth, _ = _models_run({"a": {"hidden": 8}, "b": {"hidden": 6}}, steps=10)
    assert not (fourth / "training_reused.json").exists()

"""paper_reproductions: parameter files are valid; the runner saves each run as a data file and renders RESULTS.md
(rendering itself: tests/test_report.py)."""
import json

import pytest
import yaml

from lib.notebook import notebook_defaults
from lib.paths import NOTEBOOKS_DIR
from paper_reproductions import report, run


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_notebook_has_a_parameter_file_with_known_parameters(profile):
    specs = run.load_param_files(profile)
    assert {s["notebook"] for s in specs} == {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")}
    for spec in specs:
        allowed = set(notebook_defaults(NOTEBOOKS_DIR / f"{spec['notebook']}.py"))
        assert {"PROFILE", "SEED", "RUN_DIR"} <= allowed, spec["notebook"]
        assert set(spec["parameters"]) <= allowed, (spec["path"], set(spec["parameters"]) - allowed)


def test_unknown_experiment_is_a_clear_error():
    with pytest.raises(run.ParamFileError, match="unknown experiment"):
        run.load_param_files("quick", ["99_nope"])


def test_paper_values_name_metrics_of_known_experiments():
    rows = yaml.safe_load(report.PAPER_VALUES.read_text())
    experiments = {s["experiment"] for s in run.load_param_files("quick")}
    for row in rows:
        assert row["experiment"] in experiments and row["metric"] and row["claim"]


NOTEBOOK_HEAD = '''# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0
RUN_DIR = ""

# %%
from pathlib import Path

from lib.runs import finish_run, skip_run
'''
BODIES = {
    "80_ok": 'finish_run(Path(RUN_DIR), "80_ok", profile=PROFILE, seed=SEED, device="cpu", metrics={"x": {"value": 1.5}})\n',
    "81_broken": 'x = 1\n\n# %%\nraise ValueError("deliberately broken cell")\n',
    "82_absent_data": 'skip_run(Path(RUN_DIR), "82_absent_data", profile=PROFILE, seed=SEED, device="cpu", reason="no data here")\n'
                      '\n# %%\nraise AssertionError("a skipped notebook must stop before this cell")\n',
}


def test_batch_run_runs_every_notebook_names_failures_and_keeps_the_rest(tmp_path, monkeypatch, capsys):
    """make reproduce's runner on three real notebooks (papermill): one passes, one fails in its second code cell,
    one stops with ExperimentSkipped. Every notebook runs, the exit status is 1, the summary names the failed
    notebook and cell, the passing notebook's numbers reach its data file and RESULTS.md, and the skip is recorded
    without touching the skipped experiment's results from elsewhere (the Fashion-MNIST case)."""
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir(), params.mkdir()
    for name, body in BODIES.items():
        (nb_dir / f"{name}.py").write_text(NOTEBOOK_HEAD + body)
        (params / f"{name}.quick.yaml").write_text(f"notebook: {name}\nprofile: quick\nseeds: [0]\n")
    values = tmp_path / "paper_values.yaml"
    values.write_text('- experiment: 80_ok\n  claim: "x of the passing notebook"\n  metric: x\n  paper: 1.0\n'
                      '- experiment: 82_absent_data\n  claim: "x of the skipped one"\n  metric: x\n')
    data = tmp_path / "results"
    elsewhere = data / "82_absent_data" / "quick" / "seed0.json"  # obtained on a machine with the data
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text(json.dumps({"experiment": "82_absent_data", "profile": "quick", "seed": 0, "device": "GPU",
                                     "metrics": {"x": {"value": 7.25}}, "notebook_seconds": 5.0}))
    before = elsewhere.read_text()
    monkeypatch.setattr(run, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(run, "PARAMS_DIR", params)
    monkeypatch.setattr(report, "PAPER_VALUES", values)
    monkeypatch.setattr(report, "CLAIMS", tmp_path / "no_claims.yaml")
    monkeypatch.setattr(report, "DATA_DIR", data)
    monkeypatch.setattr(report, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
    assert run.main(["--profile", "quick"]) == 1
    out, err = capsys.readouterr()
    # the cell is named by its execution count in the executed notebook: parameters 1, papermill's injected
    # parameters 2, then the notebook's own code cells (3, 4)
    assert "1 notebook run(s) failed" in err and "81_broken (seed 0): cell 4: ValueError: deliberately broken cell" in err
    assert "82_absent_data seed 0: skipped: no data here" in out and "80_ok seed 0: ok" in out
    ok = json.loads((data / "80_ok" / "quick" / "seed0.json").read_text())
    assert ok["metrics"] == {"x": {"value": 1.5}} and ok["notebook_seconds"] > 0 and ok["started"]
    assert ok["command"] == "python -m paper_reproductions.run --profile quick --only 80_ok --seeds 0"
    assert not (data / "81_broken").exists()  # a failed run writes no data file
    assert elsewhere.read_text() == before  # the skip left the results from elsewhere alone ...
    assert json.loads((data / "82_absent_data" / "quick" / "skipped.json").read_text())["reason"] == "no data here"
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| x of the passing notebook | 1.0 | 1.50 (1 seed) | E1 |" in results
    assert "| x of the skipped one | — | 7.25 (1 seed) | E1 |" in results and "no data here" not in results  # ... shown
    assert "| `80_ok` | quick | CPU (" in results  # the runner timed it (runner.json) for the compute table
    # --results-only re-renders from the data files alone: the same text without running anything
    (tmp_path / "RESULTS.md").unlink()
    assert run.main(["--results-only", "--profile", "quick"]) == 0
    assert (tmp_path / "RESULTS.md").read_text() == results


def test_parameter_files_are_checked_against_the_notebook_before_running(tmp_path, monkeypatch):
    """load_param_files rejects, before any notebook runs, a parameter the notebook's parameters cell does not define
    and a SETTINGS that is not a complete override (lib.notebook.check_parameters)."""
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir(), params.mkdir()
    (nb_dir / "80_ok.py").write_text(NOTEBOOK_HEAD.replace('RUN_DIR = ""\n', 'RUN_DIR = ""\nSETTINGS = {"a": 1, "b": 2}\n'))
    monkeypatch.setattr(run, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(run, "PARAMS_DIR", params)
    path = params / "80_ok.full.yaml"
    path.write_text("parameters:\n  SETTINGS: {a: 3, b: 4}\n")
    assert run.load_param_files("full")[0]["parameters"] == {"SETTINGS": {"a": 3, "b": 4}}
    path.write_text("parameters:\n  SETTINGS: {a: 3}\n")
    with pytest.raises(run.ParamFileError, match=r"missing \['b'\]"):
        run.load_param_files("full")
    path.write_text("parameters:\n  SETING: {a: 3, b: 4}\n")
    with pytest.raises(run.ParamFileError, match=r"unknown parameter\(s\) \['SETING'\]"):
        run.load_param_files("full")


def test_command_line_parameters_reach_the_notebook_and_are_not_saved_as_results(runner_sandbox, capfd):
    """-p NAME VALUE overrides a notebook parameter (VALUE read as YAML); such runs stay in runs/ and write no data file;
    PROFILE / SEED / RUN_DIR and names the notebook does not define are refused. The kernel talks over Unix sockets, so
    ipykernel's 'Kernel is running over TCP without encryption' warning never reaches the terminal."""
    body = ('finish_run(Path(RUN_DIR), "83_param", profile=PROFILE, seed=SEED, device="cpu", '
            'metrics={"steps": {"value": STEPS}})\n'
            'from lib.paths import figures_dir\n(figures_dir() / "probe.txt").write_text("drawn")\n')
    tmp_path = runner_sandbox({"83_param": NOTEBOOK_HEAD.replace('RUN_DIR = ""\n', 'RUN_DIR = ""\nSTEPS = 7\n') + body},
                              {"83_param": "notebook: 83_param\nprofile: quick\nseeds: [0]\n"})
    assert run.main(["--profile", "quick", "-p", "STEPS", "1e2"]) == 0
    out, err = capfd.readouterr()
    assert "not saved to the results data" in out
    assert "without encryption" not in out + err
    final, = (tmp_path / "runs" / "83_param").glob("*_s0/final_metrics.json")
    assert json.loads(final.read_text())["metrics"]["steps"]["value"] == 100.0
    assert not (tmp_path / "results" / "83_param").exists()
    # nor are its figures the profile's: they go to the run's own folder, never into figures/<profile>/
    assert not (tmp_path / "figures" / "quick" / "probe.txt").exists()
    assert (final.parent / "figures" / "quick" / "probe.txt").read_text() == "drawn"
    assert run.main(["--profile", "quick", "-p", "SEED", "3"]) == 2
    assert "set by the runner" in capfd.readouterr().err
    assert run.main(["--profile", "quick", "-p", "STEPZ", "3"]) == 2  # refused before running, naming it
    assert "STEPZ" in capfd.readouterr().err


def test_only_the_parameter_files_first_seed_draws_into_the_profiles_figures(runner_sandbox):
    """figures/<profile>/ keeps the first seed's figures (the README's captions name it); seed 1, run after it, draws
    into its own run folder instead of overwriting them."""
    body = ('finish_run(Path(RUN_DIR), "84_seeds", profile=PROFILE, seed=SEED, device="cpu", '
            'metrics={"s": {"value": SEED}})\n'
            'from lib.paths import figures_dir\n(figures_dir() / "probe.txt").write_text(f"seed {SEED}")\n')
    tmp_path = runner_sandbox({"84_seeds": NOTEBOOK_HEAD + body},
                              {"84_seeds": "notebook: 84_seeds\nprofile: quick\nseeds: [0, 1]\n"})
    assert run.main(["--profile", "quick"]) == 0
    assert (tmp_path / "figures" / "quick" / "probe.txt").read_text() == "seed 0"
    s1, = (tmp_path / "runs" / "84_seeds").glob("*_s1")
    assert (s1 / "figures" / "quick" / "probe.txt").read_text() == "seed 1"
    assert json.loads((tmp_path / "results" / "84_seeds" / "quick" / "seed1.json").read_text())["metrics"]["s"]["value"] == 1
    # the same when seed 1 is run on its own (--seeds 1), and when its figures are rebuilt from the stored run
    assert run.main(["--profile", "quick", "--seeds", "1"]) == 0
    assert run.main(["--profile", "quick", "--figures", "--seeds", "1"]) == 0
    assert (tmp_path / "figures" / "quick" / "probe.txt").read_text() == "seed 0"


def test_jobs_run_experiments_side_by_side_in_worker_processes(runner_sandbox, capfd, monkeypatch):
    """--jobs 2: two experiments run at the same time (each in its own worker process and kernel: their notebooks'
    time intervals overlap), each seed is saved to its data file, a failure in a worker is reported as in a serial run
    (exit 1, named), and each kernel gets cpu_count // jobs torch threads."""
    timed = ('import os, time\nt0 = time.time()\ntime.sleep(4)\n'
             'finish_run(Path(RUN_DIR), "{name}", profile=PROFILE, seed=SEED, device="cpu", metrics={{'
             '"t0": {{"value": t0}}, "t1": {{"value": time.time()}}, '
             '"threads": {{"value": float(os.environ["AVAE_NUM_THREADS"])}}}})\n')
    names = ("85_left", "86_right")
    tmp_path = runner_sandbox({**{n: NOTEBOOK_HEAD + timed.format(name=n) for n in names},
                               "87_broken": NOTEBOOK_HEAD + 'raise ValueError("broken in a worker")\n'},
                              {n: f"notebook: {n}\nprofile: quick\nseeds: [0]\n" for n in (*names, "87_broken")})
    import os
    monkeypatch.delenv("AVAE_NUM_THREADS", raising=False)  # so the runner chooses the kernels' thread count
    assert run.main(["--profile", "quick", "--jobs", "2"]) == 1
    out, err = capfd.readouterr()
    assert "87_broken (seed 0): cell" in err and "ValueError: broken in a worker" in err
    got = {n: json.loads((tmp_path / "results" / n / "quick" / "seed0.json").read_text())["metrics"] for n in names}
    (a0, a1), (b0, b1) = [(got[n]["t0"]["value"], got[n]["t1"]["value"]) for n in names]
    assert a0 < b1 and b0 < a1, "the two experiments did not run at the same time"
    assert got["85_left"]["threads"]["value"] == max(1, (os.cpu_count() or 1) // 2)
    assert "85_left seed 0: ok" in out and "86_right seed 0: ok" in out
    with pytest.raises(SystemExit):
        run.main(["--profile", "quick", "--jobs", "0"])

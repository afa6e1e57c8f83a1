"""paper_reproductions: parameter files are valid, and RESULTS.md is built from measured runs."""
import json

import jupytext
import pytest
import yaml

from lib.paths import NOTEBOOKS_DIR
from paper_reproductions import run


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_notebook_has_a_parameter_file_with_known_parameters(profile):
    specs = run.load_param_files(profile)
    assert {s["notebook"] for s in specs} == {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")}
    for spec in specs:
        allowed = run.notebook_parameters(jupytext.read(NOTEBOOKS_DIR / f"{spec['notebook']}.py"))
        assert {"PROFILE", "SEED", "RUN_DIR"} <= allowed, spec["notebook"]
        assert set(spec["parameters"]) <= allowed, (spec["path"], set(spec["parameters"]) - allowed)


def test_unknown_experiment_is_a_clear_error():
    with pytest.raises(run.ParamFileError, match="unknown experiment"):
        run.load_param_files("quick", ["99_nope"])


def test_paper_values_name_metrics_of_known_experiments():
    rows = yaml.safe_load(run.PAPER_VALUES.read_text())
    experiments = {s["experiment"] for s in run.load_param_files("quick")}
    for row in rows:
        assert row["experiment"] in experiments and row["metric"] and row["claim"]


def test_results_table_is_mean_and_sd_of_the_newest_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path))
    for stamp, values in [("20260101-000000", [-9.0, -9.0]), ("20260102-000000", [-1.40, -1.42])]:
        for seed, v in enumerate(values):
            d = tmp_path / "11_avb_toy_4points" / f"{stamp}_s{seed}"
            d.mkdir(parents=True)
            (d / "final_metrics.json").write_text(json.dumps({
                "profile": "quick", "seed": seed, "device": "CPU",
                "metrics": {"avb_log_px": {"value": v, "implementation": "exact quadrature", "n": 4, "split": "test",
                                           "weights": "w.pt"}}}))
    text = run.build_results()
    row = [line for line in text.splitlines() if line.startswith("| AVB, 4-point toy: log p(x)")][0]
    # newest batch only (the -9.0 runs are older); sd of (-1.40, -1.42) = 0.0141; ours - paper = -1.41 + 1.403
    assert "| -1.410 ± 0.014 (sd; seeds: -1.400, -1.420) | -0.007 | 0,1 | quick |" in row
    assert "exact quadrature; n = 4; split = test; weights = w.pt" in row  # metric metadata travels with it


def test_rows_without_runs_on_disk_are_carried_over(tmp_path, monkeypatch):
    """A fresh clone has no runs/: rebuilding RESULTS.md must keep earlier rows, and replace them once runs exist."""
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path))
    old_row = ("| AVB, 4-point toy: log p(x) (nats) | -1.403 | -1.399 | 0.004 | 0 | quick | GPU | exact | "
               "`python -m paper_reproductions.run --profile quick --only 11_avb_toy_4points` |")
    skip = "- `22_asvae_cifar10` (quick, CPU): skipped — no data"
    text = run.build_results(previous=f"# old\n\n{old_row}\n\n{skip}\n")
    assert old_row in text and skip in text
    d = tmp_path / "11_avb_toy_4points" / "20260101-000000_s0"
    d.mkdir(parents=True)
    (d / "final_metrics.json").write_text(json.dumps({"profile": "quick", "seed": 0, "device": "CPU", "metrics": {
        "avb_log_px": {"value": -1.5, "implementation": "exact quadrature"}}}))
    text = run.build_results(previous=f"# old\n\n{old_row}\n")
    assert old_row not in text and "| -1.500 |" in text


def _timed_run(root, experiment, stamp, seed, wall, fits, device="CPU (x86_64, 1 threads)"):
    d = root / experiment / f"{stamp}_s{seed}"
    d.mkdir(parents=True)
    (d / "final_metrics.json").write_text(json.dumps({"profile": "quick", "seed": seed, "device": device, "metrics": {}}))
    (d / "runner.json").write_text(json.dumps({"experiment": experiment, "seed": seed, "seconds": wall, "ok": True}))
    for i, sec in enumerate(fits):
        (d / f"model{i}").mkdir()
        (d / f"model{i}" / "fit_time.json").write_text(json.dumps({"iterations": 10, "seconds": sec}))


def test_compute_table_sums_measured_wall_times_and_carries_old_rows(tmp_path, monkeypatch):
    """RESULTS.md's compute table: per experiment, the runner's wall time per seed (mean), the fit time per seed
    (summed over the models), the total over seeds; the sum per profile and device; rows of experiments without
    timed runs on disk carried over from the previous file and counted in the sum."""
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path))
    _timed_run(tmp_path, "11_avb_toy_4points", "20260101-000000", 0, 999.0, [1.0])  # an older batch: ignored
    _timed_run(tmp_path, "11_avb_toy_4points", "20260102-000000", 0, 60.0, [10.0, 20.0])
    _timed_run(tmp_path, "11_avb_toy_4points", "20260102-000000", 1, 90.0, [15.0, 25.0])
    lines = run.compute_section(["quick"], "")
    assert "| `11_avb_toy_4points` | quick | CPU (x86_64, 1 threads) | 0,1 | 75 s | 35 s | 2.5 min |" in lines
    assert "Sum, quick profile on CPU (x86_64, 1 threads): 2.5 min (0.04 h)." in lines
    old = "| `12_avb_mnist` | quick | CPU (x86_64, 1 threads) | 0 | 10.0 min | 8.0 min | 10.0 min |"
    text = run.build_results(profiles=("quick",), previous=f"# old\n\n{run.COMPUTE_HEADING}\n\n{old}\n")
    assert old in text and "Sum, quick profile on CPU (x86_64, 1 threads): 12.5 min (0.21 h)." in text
    assert text.count(old) == 1  # not also carried into the results table above


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
    notebook and cell, the passing notebook's numbers reach RESULTS.md and the skip is listed there."""
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir(), params.mkdir()
    for name, body in BODIES.items():
        (nb_dir / f"{name}.py").write_text(NOTEBOOK_HEAD + body)
        (params / f"{name}.quick.yaml").write_text(f"notebook: {name}\nprofile: quick\nseeds: [0]\n")
    values = tmp_path / "paper_values.yaml"
    values.write_text('- experiment: 80_ok\n  claim: "x of the passing notebook"\n  metric: x\n  paper: 1.0\n'
                      '- experiment: 82_absent_data\n  claim: "x of the skipped one"\n  metric: x\n')
    monkeypatch.setattr(run, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(run, "PARAMS_DIR", params)
    monkeypatch.setattr(run, "PAPER_VALUES", values)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
    assert run.main(["--profile", "quick"]) == 1
    out, err = capsys.readouterr()
    # the cell is named by its execution count in the executed notebook: parameters 1, papermill's injected
    # parameters 2, then the notebook's own code cells (3, 4)
    assert "1 notebook run(s) failed" in err and "81_broken (seed 0): cell 4: ValueError: deliberately broken cell" in err
    assert "82_absent_data seed 0: skipped: no data here" in out and "80_ok seed 0: ok" in out
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| x of the passing notebook | 1.0 | 1.50 | 0.50 |" in results
    assert "- `82_absent_data` (quick, CPU" in results and "skipped — no data here" in results
    assert "| `80_ok` | quick | CPU (" in results  # the runner timed it (runner.json) for the compute table


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

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

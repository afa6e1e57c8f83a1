"""paper_reproductions.report: data files from runs, RESULTS.md rendered from them, the scoreboard's verdicts."""
import json
import math

import pytest
import yaml

from paper_reproductions import report


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data folder in place of the committed paper_reproductions/results/ (RESULTS.md too)."""
    monkeypatch.setattr(report, "DATA_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "RESULTS", tmp_path / "RESULTS.md")
    return tmp_path / "results"


def _record(experiment, profile, seed, metrics, device="CPU (x86_64, 1 threads)", seconds=60.0, fit=30.0):
    return {"experiment": experiment, "profile": profile, "seed": seed, "device": device, "parameters": {},
            "metrics": {k: (v if isinstance(v, dict) else {"value": v, "implementation": "exact quadrature", "n": 4})
                        for k, v in metrics.items()},
            "notebook": experiment, "notebook_seconds": seconds, "fit_seconds": fit,
            "started": "2026-11-29T16:00:00+0000", "git_commit": "0123456789abcdef", "run": f"x_s{seed}",
            "command": report.command(experiment, profile, seed)}


def _run_folder(root, experiment, stamp, seed, metrics=None, profile="quick", skipped=None, ok=True, wall=10.0,
                fits=()):
    d = root / experiment / f"{stamp}_s{seed}"
    d.mkdir(parents=True)
    fm = {"experiment": experiment, "profile": profile, "seed": seed, "device": "CPU", "metrics": metrics or {}}
    if skipped:
        fm["skipped"] = skipped
    (d / "final_metrics.json").write_text(json.dumps(fm))
    (d / "runner.json").write_text(json.dumps({"experiment": experiment, "seed": seed, "seconds": wall, "ok": ok,
                                               "parameters": {"STEPS": 5}, "started": f"{stamp}"}))
    (d / "env.json").write_text(json.dumps({"git_commit": "feedface" * 5}))
    for i, sec in enumerate(fits):
        (d / f"model{i}").mkdir()
        (d / f"model{i}" / "fit_time.json").write_text(json.dumps({"iterations": 10, "seconds": sec}))
    return d


def _lines_over(text, n=report.MAX_LINE):
    return [line for line in text.splitlines() if len(line) > n]


# ---------------------------------------------------------------------------------------------- data files
def test_run_folder_becomes_a_data_file_with_times_commit_and_command(tmp_path, data_dir):
    d = _run_folder(tmp_path / "runs", "11_avb_toy_4points", "20260101-000000", 2,
                    {"avb_log_px": {"value": -1.4, "sem": 0.01, "implementation": "quadrature"}}, wall=75.0,
                    fits=(10.0, 20.5))
    path = report.save_run(d)
    assert path == data_dir / "11_avb_toy_4points" / "quick" / "seed2.json"
    rec = json.loads(path.read_text())
    assert rec["metrics"]["avb_log_px"] == {"value": -1.4, "sem": 0.01, "implementation": "quadrature"}
    assert (rec["notebook_seconds"], rec["fit_seconds"], rec["parameters"]) == (75.0, 30.5, {"STEPS": 5})
    assert rec["git_commit"] == "feedface" * 5 and rec["run"] == "20260101-000000_s2"
    assert rec["command"] == "python -m paper_reproductions.run --profile quick --only 11_avb_toy_4points --seeds 2"


def test_failed_or_unfinished_runs_write_nothing(tmp_path, data_dir):
    failed = _run_folder(tmp_path / "runs", "11_avb_toy_4points", "20260101-000000", 0, {"avb_log_px": -1.0}, ok=False)
    assert report.save_run(failed) is None
    running = tmp_path / "runs" / "11_avb_toy_4points" / "20260102-000000_s0"
    running.mkdir()
    (running / ".final_metrics.json.abc.tmp").write_text('{"profile": "quick", "metr')  # a leftover temporary
    assert report.save_run(running) is None
    assert report.import_runs(tmp_path / "runs") == [] and not data_dir.exists()


def test_import_takes_the_newest_run_per_experiment_profile_and_seed(tmp_path, data_dir):
    runs = tmp_path / "runs"
    _run_folder(runs, "11_avb_toy_4points", "20260101-000000", 0, {"avb_log_px": {"value": -9.0}})
    _run_folder(runs, "11_avb_toy_4points", "20260103-000000", 0, {"avb_log_px": {"value": -1.4}})
    _run_folder(runs, "11_avb_toy_4points", "20260102-000000", 0, {"avb_log_px": {"value": -5.0}})
    _run_folder(runs, "11_avb_toy_4points", "20260104-000000", 0, {"avb_log_px": {"value": -7.0}}, ok=False)
    _run_folder(runs, "11_avb_toy_4points", "20260101-000000", 1, {"avb_log_px": {"value": -1.5}})
    _run_folder(runs, "11_avb_toy_4points", "20260105-000000", 0, {"avb_log_px": {"value": -2.0}}, profile="full")
    _run_folder(runs, "12_avb_mnist", "20260101-000000", 0, {"x": {"value": 1.0}})
    written = report.import_runs(runs, only=["11_avb_toy_4points"])
    assert sorted(p.relative_to(data_dir).as_posix() for p in written) == [
        "11_avb_toy_4points/full/seed0.json", "11_avb_toy_4points/quick/seed0.json",
        "11_avb_toy_4points/quick/seed1.json"]

    def value(path):
        return json.loads((data_dir / path).read_text())["metrics"]["avb_log_px"]["value"]

    assert value("11_avb_toy_4points/quick/seed0.json") == -1.4  # newest finished run; the failed newer one ignored
    assert value("11_avb_toy_4points/quick/seed1.json") == -1.5
    assert value("11_avb_toy_4points/full/seed0.json") == -2.0
    assert not (data_dir / "12_avb_mnist").exists()  # not in --only


def test_import_records_the_newest_skip_with_all_its_seeds_unless_results_are_newer(tmp_path, data_dir):
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        _run_folder(runs, "41_avae_cifar10", "20260101-000000", seed, skipped="old reason")
        _run_folder(runs, "41_avae_cifar10", "20260102-000000", seed, skipped="no CIFAR-10")
    _run_folder(runs, "41_avae_celeba64", "20260101-000000", 0, skipped="no CelebA")
    _run_folder(runs, "41_avae_celeba64", "20260102-000000", 0, {"vae_rec_mse": {"value": 0.02}})
    report.import_runs(runs)
    skip = json.loads((data_dir / "41_avae_cifar10" / "quick" / "skipped.json").read_text())
    assert (skip["reason"], skip["seeds"]) == ("no CIFAR-10", [0, 1, 2])
    assert not (data_dir / "41_avae_celeba64" / "quick" / "skipped.json").exists()  # the result is newer
    assert (data_dir / "41_avae_celeba64" / "quick" / "seed0.json").exists()


def test_a_skip_never_removes_results_obtained_elsewhere(tmp_path, data_dir):
    """The Fashion-MNIST case: committed results from a machine with the data; a machine without it skips."""
    exp = "41_avae_fashion_mnist"
    for seed, v in enumerate([150.0, 160.0]):
        report.save_record(_record(exp, "quick", seed, {"vae_fmnist_fd": v}))
    before = {p.name: p.read_text() for p in (data_dir / exp / "quick").iterdir()}
    for seed in (0, 1, 2):
        skip = _run_folder(tmp_path / "runs", exp, "20260109-000000", seed, skipped="Fashion-MNIST not found")
        assert report.save_run(skip) == data_dir / exp / "quick" / "skipped.json"
    assert report.import_runs(tmp_path / "runs")  # importing the skips again changes nothing either
    after = {p.name: p.read_text() for p in (data_dir / exp / "quick").iterdir()}
    assert {k: after[k] for k in before} == before and set(after) == set(before) | {"skipped.json"}
    assert json.loads(after["skipped.json"])["seeds"] == [0, 1, 2]
    text = report.build_report()
    assert "| VAE, Fashion-MNIST: F-MNIST-FD of samples vs test images" in text
    assert "155.00 ± 7.07 (sd, 2 seeds: 150.00, 160.00)" in text
    assert "Fashion-MNIST not found" not in text  # results exist: the skip is not shown
    # an experiment and profile with nothing but a skip shows it, with its command
    report.save_run(_run_folder(tmp_path / "runs", "41_avae_cifar10", "20260109-000000", 0, skipped="no CIFAR-10"))
    text = report.build_report()
    assert "### `41_avae_cifar10` · quick" in text and "no CIFAR-10" in text
    # a later result of the same experiment and profile removes the stale skip record
    report.save_record(_record("41_avae_cifar10", "quick", 0, {"vae_rec_mse": 0.02}))
    assert not (data_dir / "41_avae_cifar10" / "quick" / "skipped.json").exists()


def test_a_rerun_replaces_only_its_own_seed_file(data_dir):
    for seed in (0, 1):
        report.save_record(_record("11_avb_toy_4points", "quick", seed, {"avb_log_px": -1.5}))
    report.save_record(_record("11_avb_toy_4points", "full", 0, {"avb_log_px": -1.45}))
    report.save_record(_record("11_avb_toy_4points", "quick", 1, {"avb_log_px": -1.3}))
    res = report.load_results()
    assert [r["metrics"]["avb_log_px"]["value"] for r in res[("11_avb_toy_4points", "quick")]["runs"]] == [-1.5, -1.3]
    assert [r["metrics"]["avb_log_px"]["value"] for r in res[("11_avb_toy_4points", "full")]["runs"]] == [-1.45]


# ---------------------------------------------------------------------------------------------- rendering
def test_sections_show_sd_over_seeds_and_ours_minus_paper_only_where_comparable(data_dir):
    for seed, v in enumerate([-1.40, -1.42]):
        report.save_record(_record("11_avb_toy_4points", "quick", seed, {"avb_log_px": v}))
        report.save_record(_record("11_avb_toy_4points", "full", seed, {"avb_log_px": v + 0.01}))
    text = report.build_report()
    # sd of (-1.40, -1.42) = 0.0141; quick: no ours − paper column
    assert "| AVB, 4-point toy: log p(x) (nats) | -1.403 | -1.410 ± 0.014 (sd, 2 seeds: -1.400, -1.420) | E1 |" in text
    # full: ours − paper = -1.400 + 1.403
    assert ("| AVB, 4-point toy: log p(x) (nats) | -1.403 | -1.400 ± 0.014 (sd, 2 seeds: -1.390, -1.410) | 0.003 | E1 |"
            in text)
    assert "- E1: exact quadrature; n = 4" in text  # the estimator stated once, below the table
    assert text.count("- Command: `python -m paper_reproductions.run --profile quick --only 11_avb_toy_4points`\n") == 1
    assert "Profiles in the data: quick, full." in text


def test_a_new_profile_appears_from_the_data(data_dir):
    report.save_record(_record("11_avb_toy_4points", "standard", 0, {"avb_log_px": -1.39}))
    report.save_record(_record("11_avb_toy_4points", "quick", 0, {"avb_log_px": -1.41}))
    assert report.profiles_of(report.load_results()) == ["quick", "standard"]
    text = report.build_report()
    assert "### `11_avb_toy_4points` · standard" in text and "Sum, standard profile on CPU (x86_64, 1 threads)" in text
    assert "| ″ | ″ | standard | -1.390 (1 seed) | **inconclusive** |" in text


def test_compute_table_from_data_files(data_dir):
    for seed, (wall, fit) in enumerate([(60.0, 30.0), (90.0, 40.0)]):
        report.save_record(_record("11_avb_toy_4points", "quick", seed, {"avb_log_px": -1.4}, seconds=wall, fit=fit))
    report.save_record(_record("12_avb_mnist", "quick", 0, {"vae_8_elbo": -100.0}, seconds=600.0, fit=480.0))
    lines = report.compute_section(report.load_results(), ["quick"])
    assert "| `11_avb_toy_4points` | quick | CPU (x86_64, 1 threads) | 0,1 | 75 s | 35 s | 2.5 min |" in lines
    assert "| `12_avb_mnist` | quick | CPU (x86_64, 1 threads) | 0 | 10.0 min | 8.0 min | 10.0 min |" in lines
    assert "Sum, quick profile on CPU (x86_64, 1 threads): 12.5 min (0.21 h)." in lines  # 150 + 600 s


def test_no_line_over_200_characters(data_dir, monkeypatch, tmp_path):
    long_impl = "AIS (stochastic lower bound), geometric path, " * 12
    report.save_record(_record("12_avb_mnist", "quick", 0, {
        k: {"value": -100.0, "sem": 1.0, "implementation": long_impl, "n": 500, "split": "test"}
        for k in ("avb_8_ais_log_px", "vae_8_ais_log_px", "vae_fid", "avb_ac_32_elbo")}))
    values = tmp_path / "paper_values.yaml"
    values.write_text(f'- experiment: 12_avb_mnist\n  claim: "{"a long claim " * 10}"\n  metric: avb_8_ais_log_px\n'
                      f'  paper: -91.2\n  paper_note: "{"a long note " * 8}"\n  source: "{"a source " * 40}"\n')
    monkeypatch.setattr(report, "PAPER_VALUES", values)
    for experiment in ("41_avae_cifar10", "41_avae_celeba64"):  # skipped: scoreboard rows with a long claim text
        report.save_record({**_record(experiment, "quick", 0, {}), "skipped": "files not found " * 20})
    text = report.build_report()
    assert "| **not run** | skipped (data absent; the reason is in its section) |" in text
    assert long_impl.strip()[:60] in text and "[1] paper: -91.2: a long note" in text  # moved under the table
    assert _lines_over(text) == []


def test_committed_results_md_has_no_line_over_200_characters():
    assert _lines_over(report.RESULTS.read_text()) == []


# ---------------------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("value, u, test, expected", [
    (2.0, 0.3, {"side": "greater", "threshold": 0, "size": 1.7}, "holds"),            # 2 - 0.6 > 0, 2 + 0.6 >= 1.7
    (0.4, 0.3, {"side": "greater", "threshold": 0, "size": 1.7}, "inconclusive"),     # 0.4 - 0.6 < 0 < 0.4 + 0.6
    (-1.0, 0.3, {"side": "greater", "threshold": 0, "size": 1.7}, "does not hold"),   # -1 + 0.6 < 0
    (0.5, 0.1, {"side": "greater", "threshold": 0, "size": 1.7}, "inconclusive"),     # right side, 0.7 < 1.7: too small
    (0.5, 0.2, {"side": "less", "threshold": 1}, "holds"),                            # 0.5 + 0.4 < 1
    (1.5, 0.2, {"side": "less", "threshold": 1}, "does not hold"),                    # 1.5 - 0.4 > 1
    (0.9, 0.2, {"side": "less", "threshold": 1}, "inconclusive"),
    (0.2, 0.3, {"side": "equal", "value": 0, "tolerance": 0.9}, "holds"),             # 0.2 + 0.6 <= 0.9
    (2.0, 0.3, {"side": "equal", "value": 0, "tolerance": 0.9}, "does not hold"),     # 2 - 0.6 > 0.9
    (0.5, 0.3, {"side": "equal", "value": 0, "tolerance": 0.9}, "inconclusive"),      # 1.1 > 0.9 >= -0.1
    (5.0, None, {"side": "greater", "threshold": 0}, "inconclusive"),                 # no uncertainty
])
def test_verdict_rule(value, u, test, expected):
    assert report.verdict(value, u, test)[0] == expected


def test_uncertainty_is_sd_over_seeds_else_sem_in_quadrature():
    diff = {"difference": ["a", "b"]}
    one = [{"seed": 0, "metrics": {"a": {"value": -80.0, "sem": 3.0}, "b": {"value": -82.0, "sem": 4.0}}}]
    assert report.measure(diff, one) == {"value": 2.0, "u": 5.0, "u_kind": "sem", "seeds": [0]}  # hypot(3, 4)
    ratio = report.measure({"ratio": ["a", "b"]}, [{"seed": 0, "metrics": {"a": {"value": 2.0, "sem": 0.2},
                                                                           "b": {"value": 4.0, "sem": 0.2}}}])
    assert ratio["value"] == 0.5 and ratio["u"] == pytest.approx(0.5 * math.sqrt(0.1 ** 2 + 0.05 ** 2))
    three = [{"seed": s, "metrics": {"a": {"value": a, "sem": 9.0}, "b": {"value": b}}}
             for s, (a, b) in enumerate([(1.0, 0.0), (3.0, 0.0), (5.0, 1.0)])]  # differences 1, 3, 4
    m = report.measure(diff, three)
    assert m["value"] == pytest.approx(8 / 3) and m["u_kind"] == "sd"
    assert m["u"] == pytest.approx(math.sqrt(((1 - 8 / 3) ** 2 + (3 - 8 / 3) ** 2 + (4 - 8 / 3) ** 2) / 2))
    assert report.measure(diff, [{"seed": 0, "metrics": {"a": {"value": 1.0}}}]) is None  # b absent


CLAIM = {"paper": "AVB", "experiment": "12_avb_mnist", "text": "AVB+AC-32 minus VAE-32", "paper_value": 1.7,
         "quantity": {"difference": ["avb_ac_32_ais_log_px", "vae_32_ais_log_px"]},
         "holds_if": {"side": "greater", "threshold": 0, "size": 1.7}}


def _results(profile, pairs, sem=0.1):
    runs = [{"seed": s, "metrics": {"avb_ac_32_ais_log_px": {"value": a, "sem": sem},
                                    "vae_32_ais_log_px": {"value": b, "sem": sem}}} for s, (a, b) in enumerate(pairs)]
    return {("12_avb_mnist", profile): {"runs": runs, "skipped": None}}


@pytest.mark.parametrize("profile, pairs, expected", [
    ("full", [(-80.0, -82.0), (-80.2, -81.9)], "holds"),                  # +2.0, +1.7: sd 0.21
    ("full", [(-83.0, -81.0), (-82.8, -81.0)], "does not hold"),          # -2.0, -1.8
    ("full", [(-81.0, -81.5), (-82.0, -81.5)], "inconclusive"),           # +0.5, -0.5
    ("full", [(-80.0, -82.0)], "holds"),                                  # one seed: sem hypot(0.1, 0.1)
    ("quick", [(-80.0, -82.0), (-80.2, -81.9)], "not comparable (quick)"),
])
def test_claim_verdicts_on_synthetic_runs(profile, pairs, expected):
    assert report.evaluate_claim(CLAIM, _results(profile, pairs), profile)["verdict"] == expected


def test_quick_is_never_comparable_even_when_a_claim_says_so():
    claim = {**CLAIM, "comparable_profiles": ["quick", "full"]}
    assert report.evaluate_claim(claim, _results("quick", [(-80.0, -82.0)]), "quick")["verdict"] == \
        "not comparable (quick)"
    assert report.evaluate_claim(claim, _results("full", [(-80.0, -82.0)]), "full")["verdict"] == "holds"


def test_claims_without_metrics_are_not_run_and_say_why():
    assert report.evaluate_claim(CLAIM, {}, "full") == {"verdict": "not run", "reason": "no run", "ours": None}
    skipped = {("12_avb_mnist", "full"): {"runs": [], "skipped": {"reason": "MNIST absent"}}}
    assert report.evaluate_claim(CLAIM, skipped, "full")["reason"].startswith("skipped")
    other = {("12_avb_mnist", "full"): {"runs": [{"seed": 0, "metrics": {"x": {"value": 1.0}}}], "skipped": None}}
    e = report.evaluate_claim(CLAIM, other, "full")
    assert e["verdict"] == "not run" and "avb_ac_32_ais_log_px" in e["reason"]


def test_scoreboard_lists_every_paper_and_renders_verdicts(data_dir):
    report.save_record(_record("12_avb_mnist", "quick", 0, {
        "avb_ac_32_ais_log_px": {"value": -80.0, "sem": 0.1}, "vae_32_ais_log_px": {"value": -82.0, "sem": 0.1}}))
    report.save_record(_record("12_avb_mnist", "full", 0, {
        "avb_ac_32_ais_log_px": {"value": -80.0, "sem": 0.1}, "vae_32_ais_log_px": {"value": -82.0, "sem": 0.1}}))
    text = report.build_report()
    board = text.split("## Scoreboard")[1].split("## Results per experiment")[0]
    assert all(f"### {p}" in board for p in report.PAPERS)
    row = [line for line in board.splitlines() if line.startswith("| MNIST AIS log p(x): AVB+AC-32 minus VAE-32")][0]
    assert "| 1.70 | quick | 2.00 ± 0.14 (sem, 1 seed) | **not comparable (quick)** | as measured: holds |" in row
    assert "| ″ | ″ | full | 2.00 ± 0.14 (sem, 1 seed) | **holds** |" in board
    assert "flow_vae_neg_elbo" in board and "**not run**" in board  # the AS-VAE flow baseline has no metric yet
    claims = report.load_claims()
    assert {c["paper"] for c in claims} == set(report.PAPERS)
    assert all(c["holds_if"]["side"] in ("greater", "less", "equal") for c in claims)


def test_a_run_without_runner_json_takes_its_start_from_the_folder_stamp(tmp_path):
    d = tmp_path / "11_avb_toy_4points" / "20261129-161154_s0"
    d.mkdir(parents=True)
    (d / "final_metrics.json").write_text(json.dumps({"profile": "quick", "seed": 0, "metrics": {}}))
    rec = report.record_from_run(d)
    assert rec["started"] == "2026-11-29T16:11:54" and rec["notebook_seconds"] is None and rec["fit_seconds"] is None
    assert rec["experiment"] == "11_avb_toy_4points"  # from the folder when final_metrics.json does not say


def test_a_skip_keeps_only_the_seeds_of_its_own_runner_invocation(tmp_path, data_dir):
    """An older invocation skipped seeds 0, 1, 2; the parameter file now lists seed 0 only: the new record says [0]."""
    for seed in (0, 1, 2):
        report.save_run(_run_folder(tmp_path / "runs", "41_avae_cifar10", "20260101-000000", seed, skipped="no CIFAR-10"))
    path = data_dir / "41_avae_cifar10" / "quick" / "skipped.json"
    assert json.loads(path.read_text())["seeds"] == [0, 1, 2]  # one invocation, three seeds: one record
    report.save_run(_run_folder(tmp_path / "runs", "41_avae_cifar10", "20260102-000000", 0, skipped="no CIFAR-10"))
    assert json.loads(path.read_text())["seeds"] == [0]


def _params(folder, experiment, profile, seeds, parameters):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{experiment}.{profile}.yaml").write_text(
        yaml.safe_dump({"notebook": experiment, "profile": profile, "seeds": seeds, "parameters": parameters}))


def test_stale_records_name_data_that_no_longer_match_their_parameter_file(tmp_path, data_dir):
    params = tmp_path / "params"
    _params(params, "21_asvae_mnist", "standard", [0, 1], {"STEPS": 5})
    report.save_record({**_record("21_asvae_mnist", "standard", 0, {"m": 1.0}), "parameters": {"STEPS": 5}})
    assert report.stale_records(data_dir, params) == []  # a current record
    report.save_record({**_record("21_asvae_mnist", "standard", 1, {"m": 1.0}), "parameters": {"STEPS": 4}})
    report.save_record({**_record("21_asvae_mnist", "standard", 2, {"m": 1.0}), "parameters": {"STEPS": 5}})
    report.save_record({**_record("12_avb_mnist", "standard", 0, {"m": 1.0}), "parameters": {}})
    problems = report.stale_records(data_dir, params)
    assert len(problems) == 3
    assert "seed1.json: parameters differ" in problems[1] and "--seeds 1" in problems[1]
    assert "seed2.json: seed 2 not in 21_asvae_mnist.standard.yaml" in problems[2]
    assert "12_avb_mnist/standard: no parameter file 12_avb_mnist.standard.yaml" in problems[0]


def test_committed_results_match_the_committed_parameter_files():
    """RESULTS.md renders every data file; each must be a result of its current parameter file (no stale seeds)."""
    assert report.stale_records() == []


def test_a_part_of_an_experiment_carries_its_claims_and_paper_values(data_dir):
    """12_avb_mnist_z32 (notebook 12_avb_mnist with PART set) answers 12_avb_mnist's claim; without PART it does not."""
    metrics = {"avb_ac_32_ais_log_px": {"value": -80.0, "sem": 0.1}, "vae_32_ais_log_px": {"value": -82.0, "sem": 0.1}}
    part = {**_record("12_avb_mnist_z32", "standard", 0, metrics), "notebook": "12_avb_mnist",
            "parameters": {"PART": "z32", "MODELS": "vae-32,avb_ac-32"}}
    results = {("12_avb_mnist_z32", "standard"): {"runs": [part], "skipped": None}}
    e = report.evaluate_claim({**CLAIM, "comparable_profiles": ["standard"]}, results, "standard")
    assert e["verdict"] == "holds" and e["ours"]["value"] == pytest.approx(2.0) and "12_avb_mnist_z32" in e["reason"]
    alone = {**part, "parameters": {"MODELS": "vae-32,avb_ac-32"}}  # not a part: the claim stays unanswered
    assert report.evaluate_claim(CLAIM, {("12_avb_mnist_z32", "standard"): {"runs": [alone], "skipped": None}},
                                 "standard")["verdict"] == "not run"
    report.save_record(part)
    section = report.build_report().split("### `12_avb_mnist_z32` · standard")[1].split("\n##")[0]
    assert "No metric of this run is listed" not in section  # 12_avb_mnist's paper-value rows, for its two models only
    assert "| VAE (32-dim), MNIST: log p(x), AIS (nats) | -81.9" in section and "(8-dim)" not in section

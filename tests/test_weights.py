"""paper_reproductions.weights: export a finished run's models to small weights files and re-evaluate them.

The run folders here are made as notebooks 12 and 21 make theirs (same build calls, ``lib.train.fit`` writing
``ckpt.pt``, the evaluations right after training, ``final_metrics.json`` keys), with tiny networks and a few
iterations on a few images, so that the whole file runs in seconds.
"""
import io
import json
import shutil

import pytest
import torch

from lib import registry
from lib.ais import evaluate_ais
from lib.data import BatchSampler, fixed_binarization, load_mnist
from lib.evaluate import evaluate_elbo, evaluate_log_px
from lib.runs import finish_run, seed_everything, start_run
from lib.train import fit
from paper_reproductions import weights as W

STEPS = 6
EVAL = dict(n_test_elbo=40, n_test_iwae=12, k_iwae=8, n_test_ais=4, ais_steps=3, ais_chains=2)
#: (experiment, model): one run of each notebook whose models can be exported; avb-4 uses its adversary in the ELBO
RUNS = [("21_asvae_mnist", "flow_vae"), ("12_avb_mnist", "avb-4")]


def _notebook_build(experiment: str, name: str, cfg: dict):
    """The `build` functions of notebooks/12_avb_mnist.py and 21_asvae_mnist.py, written out independently."""
    if experiment == "12_avb_mnist":
        method, z_dim = name.split("-")
        return registry.build(method, x_shape=(1, 28, 28), z_dim=int(z_dim), arch=cfg["arch"], hidden=cfg["hidden"],
                              noise_dim=cfg["noise_dim"], adversary_hidden=cfg["adversary_hidden"],
                              adversary_kind=cfg["adversary_kind"], adversary_steps=cfg["adversary_steps"])
    return registry.build(name, x_shape=(1, 28, 28), z_dim=cfg["z_dim"], arch=cfg["arch"], hidden=cfg["hidden"],
                          adversary_hidden=cfg["adversary_hidden"], adversary_steps=cfg["discriminator_steps"],
                          n_flows=cfg["n_flows"])


def _settings(experiment: str) -> dict:
    common = dict(arch="mlp", hidden=[16], adversary_hidden=[16], steps=STEPS, batch_size=5, **EVAL, n_score=10)
    if experiment == "12_avb_mnist":
        return dict(common, adversary_kind="concat", adversary_steps=1, noise_dim=4, lr_vae=1e-3, lr_primal=1e-3,
                    lr_adversary=2e-3)
    return dict(common, discriminator_steps=1, n_flows=2, z_dim=4, lr_primal=1e-3, lr_discriminators=2e-3)


def make_run(root, experiment: str, name: str) -> tuple:
    """A finished run folder of ``experiment`` with one model, made as the notebook makes it. returns (folder,
    the trained model, its metrics as the notebook stores them)."""
    cfg = dict(_settings(experiment), models=[name], betas=[0.5, 0.999], binarization="dynamic",
               split="50k/10k/10k, test set binarised once with seed 0")
    run_dir = start_run(experiment, profile="quick", seed=0, device=torch.device("cpu"), config=cfg,
                        run_dir=root / experiment / "20260101-000000_s0")
    cfg = json.loads((run_dir / "config.json").read_text())
    train_x = torch.rand(20, 1, 28, 28)
    x_test = fixed_binarization(load_mnist()["test"].images, seed=0)
    seed_everything(0)
    model = _notebook_build(experiment, name, cfg)
    fit(model, BatchSampler(train_x, cfg["batch_size"]), steps=STEPS, lr={p: 1e-3 for p in model.players},
        betas=cfg["betas"], run_dir=run_dir / name, log_every=2, ckpt_every=2, progress=False)
    elbo = evaluate_elbo(model, x_test[: cfg["n_test_elbo"]])
    log_px = evaluate_log_px(model, x_test[: cfg["n_test_iwae"]], k=cfg["k_iwae"])
    ais = evaluate_ais(model, x_test[: cfg["n_test_ais"]], n_steps=cfg["ais_steps"], n_chains=cfg["ais_chains"],
                       generator=torch.Generator().manual_seed(0), progress=False)
    key = name.replace("-", "_")
    metrics = {f"{key}_log_px": {**{k: v for k, v in log_px.items() if k != "log_px"}, "split": "test"},
               f"{key}_ais_log_px": {**{k: v for k, v in ais.items() if k in ("value", "sem", "n", "implementation")},
                                     "split": "test"},
               f"{key}_mnist_fd": {"value": 1.0}, "heldout_test_mnist_fd": {"value": 0.5}}
    if experiment == "12_avb_mnist":
        metrics[f"{key}_elbo"] = {k: v for k, v in elbo.items() if k in ("value", "sem", "n", "implementation")}
    else:
        metrics[f"{key}_neg_elbo"] = {"value": -elbo["value"], "sem": elbo["sem"], "n": elbo["n"]}
    finish_run(run_dir, experiment, profile="quick", seed=0, device="cpu", metrics=metrics)
    (run_dir / "runner.json").write_text(json.dumps({"ok": True, "error": None}))
    return run_dir, model, json.loads((run_dir / "final_metrics.json").read_text())["metrics"]


@pytest.fixture(scope="module", params=RUNS, ids=[m for _, m in RUNS])
def run(request, tmp_path_factory):
    experiment, name = request.param
    root = tmp_path_factory.mktemp("runs")
    run_dir, model, metrics = make_run(root, experiment, name)
    out = tmp_path_factory.mktemp("weights")
    path = W.export_model(run_dir, name, out)
    return dict(experiment=experiment, name=name, run_dir=run_dir, model=model, metrics=metrics, path=path, out=out)


def test_export_writes_plain_data_with_the_models_weights_settings_and_metrics(run):
    path = run["path"]
    assert path == run["out"] / run["experiment"] / "quick" / "seed0" / f"{run['name']}.pt"
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == W.FORMAT and blob["format_version"] == W.FORMAT_VERSION
    assert (blob["experiment"], blob["profile"], blob["seed"], blob["model"]) == (run["experiment"], "quick", 0,
                                                                                   run["name"])
    assert blob["step"] == STEPS and blob["run"] == blob["trained_in"] == run["run_dir"].name
    assert blob["git_commit"] == json.loads((run["run_dir"] / "env.json").read_text())["git_commit"]
    state = run["model"].state_dict()
    assert list(blob["state_dict"]) == list(state)
    for k, v in state.items():  # bit-identical, dtype and shape included
        assert blob["state_dict"][k].dtype == v.dtype and torch.equal(blob["state_dict"][k], v), k
    assert blob["evaluation"] == {**EVAL, "SEED": 0}
    prefix = run["name"].replace("-", "_")
    assert blob["metrics"] == {k: v for k, v in run["metrics"].items() if k.startswith(prefix + "_")}
    assert len(blob["metrics"]) == 4 and "heldout_test_mnist_fd" not in blob["metrics"]
    ckpt = torch.load(run["run_dir"] / run["name"] / "ckpt.pt", weights_only=False)
    assert torch.equal(blob["rng_after_training"]["torch"], ckpt["rng"]["torch"])
    rebuilt = W.model_from_weights(blob)  # a strict load into the notebook's build
    assert type(rebuilt) is type(run["model"]) and rebuilt.config() == run["model"].config()
    if run["experiment"] == "12_avb_mnist":
        assert blob["registry_name"] == "avb" and blob["build_options"]["z_dim"] == 4


def test_evaluate_by_default_replays_the_notebooks_evaluation_exactly(run):
    blob = W.load_weights(run["path"])
    result = W.evaluate_weights(blob)
    assert result["replayed"] and result["settings"] == {**EVAL, "SEED": 0}
    rows = W.comparison(blob, result)
    prefix, elbo = run["name"].replace("-", "_"), "elbo" if run["experiment"] == "12_avb_mnist" else "neg_elbo"
    assert [r["key"] for r in rows] == [f"{prefix}_{elbo}", f"{prefix}_log_px", f"{prefix}_ais_log_px"]
    for r in rows:  # the stored numbers were computed by the notebook's calls right after training
        assert r["stored"] is not None, r["key"]
        assert r["now"][0] == r["stored"][0] and r["now"][1] == r["stored"][1], r
        assert r["z"] == 0.0
    sign = 1 if run["experiment"] == "12_avb_mnist" else -1
    assert rows[0]["now"][0] == sign * result["elbo"]["value"]


def test_evaluate_with_a_seed_equals_direct_calls_on_the_original_model(run):
    result = W.evaluate_weights(W.load_weights(run["path"]), n_elbo=30, n_iwae=7, k=5, n_ais=3, ais_steps=2,
                                ais_chains=3, seed=3)
    assert not result["replayed"]
    x = fixed_binarization(load_mnist()["test"].images, seed=0)
    model = run["model"]
    seed_everything(3)
    elbo = evaluate_elbo(model, x[:30])
    log_px = evaluate_log_px(model, x[:7], k=5)
    ais = evaluate_ais(model, x[:3], n_steps=2, n_chains=3, generator=torch.Generator().manual_seed(3))
    assert (result["elbo"]["value"], result["elbo"]["sem"]) == (elbo["value"], elbo["sem"])
    assert torch.equal(result["log_px"]["log_px"], log_px["log_px"])
    assert torch.equal(result["ais"]["log_px"], ais["log_px"])
    assert result["elbo"]["value"] != W.evaluate_weights(W.load_weights(run["path"]), n_elbo=30, seed=4,
                                                         skip_ais=True)["elbo"]["value"]


def test_the_command_prints_the_table_and_exits_0(run, capsys):
    rc = W.main(["evaluate", str(run["path"]), "--n-elbo", "20", "--n-iwae", "5", "--k", "4", "--skip-ais",
                 "--seed", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "stored ± sem" in out and "re-evaluated ± sem" in out and "AIS" not in out.split("quantity")[1].split("\n\n")[0]
    elbo_row = next(line for line in out.splitlines() if "ELBO " in line)
    stored = run["metrics"][[k for k in run["metrics"] if k.endswith("elbo")][0]]["value"]
    assert f"{stored:.3f}" in elbo_row


def test_export_refuses_a_checkpoint_short_of_the_final_iteration(run, tmp_path):
    copy = tmp_path / run["run_dir"].name
    shutil.copytree(run["run_dir"], copy)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "steps": 2 * STEPS}))  # an interrupted run
    with pytest.raises(W.WeightsError, match=f"iteration {STEPS}, not the run's final {2 * STEPS}"):
        W.export_model(copy, run["name"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_errors_name_the_problem(run, tmp_path, capsys):
    copy = tmp_path / run["run_dir"].name
    shutil.copytree(run["run_dir"], copy)
    shutil.rmtree(copy / run["name"])
    with pytest.raises(W.WeightsError, match="lacks model .* checkpoint"):
        W.export_model(copy, run["name"], tmp_path / "out")
    with pytest.raises(W.WeightsError, match="trained the models"):
        W.export_model(run["run_dir"], "vae-99", tmp_path / "out")
    with pytest.raises(W.WeightsError, match="not a run folder"):
        W.export_model(tmp_path, run["name"], tmp_path / "out")
    (copy / "final_metrics.json").unlink()
    with pytest.raises(W.WeightsError, match="has not finished"):
        W.export_model(copy, run["name"], tmp_path / "out")
    assert W.main(["export", str(copy), "--models", run["name"], "--out", str(tmp_path / "out")]) == 2
    assert "has not finished" in capsys.readouterr().err


def test_a_file_that_is_not_a_weights_file_is_a_clear_error(run, tmp_path, capsys):
    with pytest.raises(W.WeightsError, match="not found"):
        W.load_weights(tmp_path / "absent.pt")
    with pytest.raises(W.WeightsError, match="holds objects other than tensors"):  # a training checkpoint
        W.load_weights(run["run_dir"] / run["name"] / "ckpt.pt")
    (tmp_path / "text.pt").write_text("not torch")
    with pytest.raises(W.WeightsError, match="cannot be read as a torch.save file"):
        W.load_weights(tmp_path / "text.pt")
    (tmp_path / "truncated.pt").write_bytes(run["path"].read_bytes()[:100_000])
    with pytest.raises(W.WeightsError, match="cannot be read as a torch.save file"):
        W.load_weights(tmp_path / "truncated.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(W.WeightsError, match="no format"):
        W.load_weights(tmp_path / "foreign.pt")
    blob = torch.load(run["path"], weights_only=True)
    torch.save({**blob, "format_version": W.FORMAT_VERSION + 1}, tmp_path / "future.pt")
    with pytest.raises(W.WeightsError, match="format version"):
        W.load_weights(tmp_path / "future.pt")
    assert W.main(["evaluate", str(tmp_path / "text.pt")]) == 2
    assert "not a weights file" in capsys.readouterr().err


def test_metrics_of_one_model_exclude_a_model_whose_name_extends_it():
    metrics = {"asvae_neg_elbo": 1, "asvae_r_neg_elbo": 2, "asvae_g_log_px": 3, "asvae_log_px": 4, "flow_vae_x": 5}
    names = ["asvae", "asvae_r", "asvae_g", "flow_vae"]
    assert W._model_metrics(metrics, "asvae", names) == {"asvae_neg_elbo": 1, "asvae_log_px": 4}
    assert W._model_metrics(metrics, "asvae_r", names) == {"asvae_r_neg_elbo": 2}


def _fake_weights(path, n_bytes: int) -> None:
    buf = io.BytesIO()
    torch.save({"format": W.FORMAT, "format_version": W.FORMAT_VERSION, "state_dict": {"w": torch.zeros(n_bytes // 4)}},
               buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def test_committed_weights_load_with_weights_only_and_fit_the_size_budget():
    sizes = W.check_committed()  # the repository's own (none yet: passes trivially)
    assert sum(sizes.values()) <= W.MAX_TOTAL_BYTES
    for path in W.committed_files():
        torch.load(path, map_location="cpu", weights_only=True)


def test_the_committed_weights_check_can_fail(tmp_path):
    _fake_weights(tmp_path / "a" / "quick" / "seed0" / "m.pt", 4_000)
    _fake_weights(tmp_path / "b" / "quick" / "seed0" / "m.pt", 4_000)
    sizes = W.check_committed(tmp_path, max_total_bytes=20_000)
    assert len(sizes) == 2 and all(s > 4_000 for s in sizes.values())
    with pytest.raises(W.WeightsError, match="more than"):
        W.check_committed(tmp_path, max_total_bytes=sum(sizes.values()) - 1)
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "b" / "pickled.pt")  # a pickled module
    with pytest.raises(W.WeightsError, match="b/pickled.pt is not a weights file"):
        W.check_committed(tmp_path)


def test_parts_of_a_notebook_export_with_its_builder():
    """12_avb_mnist_z32 / _z8 (standard profile: the notebook with PART set) are 12_avb_mnist's models."""
    assert W.notebook_of("12_avb_mnist") == "12_avb_mnist"
    assert W.notebook_of("12_avb_mnist_z32") == W.notebook_of("12_avb_mnist_z8") == "12_avb_mnist"
    assert W.notebook_of("21_asvae_mnist") == "21_asvae_mnist"
    assert W.notebook_of("31_bavae_mnist") is None and W.notebook_of("12_avb") is None
    assert W.notebook_of(None) is None


def test_export_of_a_reevaluation_names_the_run_that_trained_the_model(run, tmp_path):
    """A run folder that re-evaluated another run's models (training_reused.json, lib.notebook.reuse_training) exports
    the same weights, with trained_in and git_commit taken from the folder that trained them."""
    donor_env = json.loads((run["run_dir"] / "env.json").read_text())
    (run["run_dir"] / "env.json").write_text(json.dumps({**donor_env, "git_commit": "d" * 40}))
    try:
        again = run["run_dir"].parent / "20260101-000100_s0"
        shutil.copytree(run["run_dir"], again)
        (again / "env.json").write_text(json.dumps({**donor_env, "git_commit": "e" * 40}))
        (again / "training_reused.json").write_text(json.dumps({"from": str(run["run_dir"]), "models": [run["name"]],
                                                                 "differs_in": {"ais_steps": [2, 3]},
                                                                 "training_seconds": 1.0}))
        blob = torch.load(W.export_model(again, run["name"], tmp_path), weights_only=True)
    finally:
        (run["run_dir"] / "env.json").write_text(json.dumps(donor_env))
    assert blob["run"] == again.name and blob["trained_in"] == run["run_dir"].name
    assert blob["git_commit"] == "d" * 40
    for k, v in run["model"].state_dict().items():
        assert torch.equal(blob["state_dict"][k], v), k


def test_ais_step_study_rows_equal_direct_calls_and_pair_the_differences(run):
    """Each row is lib.ais.evaluate_ais at that count from the run's RNG state after training (an independent call
    here); differences are per image, paired; the doubling rule is judged only where a count doubles the previous."""
    from lib.evaluate import mean_sem

    blob = W.load_weights(run["path"])
    seen = []
    rows = W.ais_step_study(blob, [2, 4, 5], n_ais=3, on_row=seen.append)
    assert seen == rows  # each row handed over as it is computed (the command prints it then)
    x = fixed_binarization(load_mnist()["test"].images, seed=0)[:3]
    direct, model = [], W.model_from_weights(blob)  # built first: building draws initial weights
    for t in (2, 4, 5):
        torch.set_rng_state(blob["rng_after_training"]["torch"])
        direct.append(evaluate_ais(model, x, n_steps=t, n_chains=EVAL["ais_chains"],
                                   generator=torch.Generator().manual_seed(0), progress=False))
    assert [r["steps"] for r in rows] == [2, 4, 5]
    assert [r["value"] for r in rows] == [d["value"] for d in direct]
    assert "minus_previous" not in rows[0]
    for r, prev, now in zip(rows[1:], direct, direct[1:]):
        assert r["minus_previous"] == mean_sem(now["log_px"] - prev["log_px"])
        assert r["minus_previous"][0] == pytest.approx(now["value"] - prev["value"], abs=1e-9)
    assert rows[1]["doubling_ok"] == (abs(rows[1]["minus_previous"][0]) < W.DOUBLING_TOLERANCE)
    assert rows[2]["doubling_ok"] is None  # 5 is not twice 4
    for bad in ([], [4, 2], [0, 1]):
        with pytest.raises(ValueError):
            W.ais_step_study(blob, bad, n_ais=3)
    with pytest.raises(ValueError):
        W.ais_step_study(blob, [2], n_ais=0)


def test_ais_steps_command_prints_paired_differences_and_refuses_bad_counts(run, capsys):
    assert W.main(["ais-steps", str(run["path"]), "--steps", "2", "4", "--n-ais", "2"]) == 0
    out = capsys.readouterr().out
    assert "AIS-2:" in out and "AIS-4:" in out and "paired" in out and "on doubling" in out
    assert W.main(["ais-steps", str(run["path"]), "--steps", "4", "2"]) == 2
    assert "increasing" in capsys.readouterr().err

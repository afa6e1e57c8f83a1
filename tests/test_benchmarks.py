"""benchmarks.table_cost reads the full profile's parameter files, builds every model of the full-profile MNIST table, and
multiplies timed slices out correctly. (The benchmarks' speed numbers are measurements, not tested here.)"""
import json

import pytest

from benchmarks import table_cost

NOTEBOOK = '''
# %% tags=["parameters"]
PROFILE = "auto"
STEPS = 0
MODELS = "vae,avae"
BETA = 0.0625
SETTINGS = {"width": 16, "steps": 1_000, "hidden": (256, 256), "vaegan_gamma": 1.0}

# %%
SETTINGS = {"width": 0}  # later cells are not read
'''


def test_profile_settings_come_from_the_parameter_file_over_the_parameters_cell(tmp_path, monkeypatch):
    from lib import notebook
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir(), params.mkdir()
    (nb_dir / "99_fake.py").write_text(NOTEBOOK)
    (params / "99_fake.full.yaml").write_text("notebook: 99_fake\nparameters:\n  MODELS: vae\n"
                                              "  SETTINGS: {width: 64, steps: 50000, hidden: [512, 512], vaegan_gamma: 0.5}\n")
    monkeypatch.setattr(notebook, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(notebook, "PARAMS_DIR", params)
    s = table_cost.profile_settings("99_fake", "full")
    assert s["steps"] == 50_000 and s["width"] == 64 and s["hidden"] == [512, 512]  # the file's SETTINGS, not quick
    assert s["MODELS"] == "vae" and s["STEPS"] == 0 and s["BETA"] == 0.0625  # the file over the parameters cell
    assert s["OPTIONS"]["avae"] == {"beta": 0.0625, "lz_weight": 1.0, "lz_variant": "slides"}  # BETA bound
    assert s["OPTIONS"]["vaegan"] == {"gamma": 0.5, "beta": 0.0625}  # the file's vaegan_gamma
    (params / "98_fake.full.yaml").write_text("notebook: 99_fake\nparameters:\n  SETTINGS: {width: 64}\n")
    with pytest.raises(notebook.ParameterError, match=r"missing \['hidden', 'steps', 'vaegan_gamma'\]"):
        table_cost.profile_settings("98_fake", "full")  # a profile's SETTINGS is complete, not a patch
    (params / "97_fake.full.yaml").write_text("notebook: 99_fake\nparameters:\n  STEP: 5\n")
    with pytest.raises(notebook.ParameterError, match="unknown parameter"):
        table_cost.profile_settings("97_fake", "full")


def test_table_cost_copy_of_notebook_41s_models_matches_the_notebook():
    """table_cost repeats notebook 41's REGISTRY_NAME and OPTIONS: the notebook's own statements, executed with BETA and
    SETTINGS bound, give the same (a model or option added to the notebook and not to the copy fails here)."""
    import ast

    from lib.paths import NOTEBOOKS_DIR

    tree = ast.parse((NOTEBOOKS_DIR / "41_avae_mnist.py").read_text())
    wanted = {"REGISTRY_NAME", "OPTIONS"}
    found = [n for n in tree.body if isinstance(n, ast.Assign) and {getattr(t, "id", None) for t in n.targets} & wanted]
    assert {t.id for n in found for t in n.targets} == wanted
    ns = {"BETA": 0.03, "SETTINGS": {"vaegan_gamma": 0.7}}
    exec(compile(ast.Module(body=found, type_ignores=[]), "41_avae_mnist.py", "exec"), ns)
    assert table_cost.AVAE_REGISTRY_NAME == ns["REGISTRY_NAME"]
    assert table_cost.avae_options(0.03, 0.7) == ns["OPTIONS"]


@pytest.mark.parametrize("experiment", table_cost.EXPERIMENTS)
def test_every_full_profile_mnist_model_is_built_at_the_notebook_settings(experiment):
    """Each model named in the full parameter file is built (the constructors repeated from the notebooks must still
    match lib's signatures) with the notebook's iterations and a learning rate for every player."""
    settings = table_cost.profile_settings(experiment)
    rows = table_cost.rows(experiment)
    models = table_cost.param_file(experiment).get("MODELS") or settings.get("MODELS", "vae")
    assert [r["model"] for r in rows] == [m.strip() for m in models.split(",")]
    for r in rows:
        method = r["build"]()
        assert set(r["lr"](method)) == set(method.players)
        assert r["steps"] == settings.get("steps", settings.get("vae_steps")) > 0


def test_table_cost_multiplies_timed_slices_out(tmp_path):
    """One small experiment end to end on the CPU: training hours = iterations x seeds / measured iterations/s, and
    notebook 90's AIS work counts every AIS and BDMC (twice: forward and reverse) image x transition."""
    out = table_cost.main(["--device", "cpu", "--only", "90_eval_ais", "--seconds", "0.2", "--ais-images", "2",
                           "--ais-steps", "3", "--out", str(tmp_path)])
    (row,) = out["rows"]
    s = table_cost.profile_settings("90_eval_ais")
    assert row["training_h"] == pytest.approx(s["vae_steps"] * row["seeds"] / row["iterations_per_s"] / 3600)
    expected = (s["test_images"] * sum(t - 1 for t in s["ais_steps"])
                + 2 * s["bdmc_images"] * sum(t - 1 for t in s["bdmc_steps"]))
    assert row["ais_image_transitions"] == expected and row["ais_h"] > 0
    assert out["total_h"] == pytest.approx(row["training_h"] + row["ais_h"])
    saved = json.loads(next(tmp_path.glob("table_cost_cpu*.json")).read_text())
    assert saved["total_h"] == pytest.approx(out["total_h"]) and saved["env"]["torch"]


def test_ais_flop_count_matches_the_decoder_layers():
    """One AIS annealing step is 5 chains x 10 leapfrog gradient evaluations of log p(z) + log p(x|z): per image and
    evaluation, a forward pass (2 x in x out FLOPs per linear layer) and a backward pass to z only (2 x in x out)."""
    import torch

    from benchmarks.ais_throughput import PAPER_CHAINS, PAPER_LEAPFROG, transition_flops
    from lib import registry

    torch.manual_seed(0)
    model = registry.build("vae", x_shape=(1, 28, 28), z_dim=2, arch="mlp", hidden=(16, 16))
    x = (torch.rand(3, 1, 28, 28) > 0.5).float()
    layers = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(2, 16), (16, 16), (16, 784)]
    per_pass = sum(4 * m.in_features * m.out_features for m in layers)
    assert transition_flops(model, x) == 3 * PAPER_CHAINS * PAPER_LEAPFROG * per_pass

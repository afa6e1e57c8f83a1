import os

import pytest
import torch

# Small VMs run these tiny models much faster on one thread (see lib/runs.py: AVAE_NUM_THREADS).
torch.set_num_threads(int(os.environ.get("AVAE_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def informative_toy():
    """Factory: ``make(method)`` builds a small model on AVB's 4-point data whose decoder weights are
    scaled up (so the posterior is not the prior), and returns (model, x (4, 4), exact log p(x) (4,) in
    nats by quadrature on the 2-D latent)."""
    from lib import registry
    from lib.evaluate import exact_log_px_2d
    from lib.toys import four_points

    def make(method: str):
        torch.manual_seed(0)
        model = registry.build(method, x_shape=(4,), z_dim=2, hidden=(16,), noise_dim=4, adversary_hidden=(8,))
        with torch.no_grad():
            model.decoder.net[-1].weight.mul_(8)
        x = four_points()
        return model, x, exact_log_px_2d(model.decoder, x)

    return make


@pytest.fixture(autouse=True)
def _default_figure_profile():
    """Every test starts with figures going to the default profile's folder (open_notebook in a test changes it)."""
    import lib.paths
    lib.paths.set_figure_profile(lib.paths.DEFAULT_FIGURE_PROFILE)
    yield
    lib.paths.set_figure_profile(lib.paths.DEFAULT_FIGURE_PROFILE)


@pytest.fixture
def runner_sandbox(tmp_path, monkeypatch):
    """Factory: ``make({stem: notebook text}, {stem: parameter-file YAML for the quick profile})`` points the runner
    (paper_reproductions.run) and the report at temporary notebooks, parameter files, runs, figures, results data
    and RESULTS.md under tmp_path, with no paper values and no claims; returns tmp_path."""
    from paper_reproductions import report, run

    def make(notebooks: dict[str, str], params: dict[str, str]):
        nb_dir, params_dir = tmp_path / "notebooks", tmp_path / "params"
        nb_dir.mkdir(exist_ok=True), params_dir.mkdir(exist_ok=True)
        for stem, text in notebooks.items():
            (nb_dir / f"{stem}.py").write_text(text)
        for stem, text in params.items():
            (params_dir / f"{stem}.quick.yaml").write_text(text)
        monkeypatch.setattr(run, "NOTEBOOKS_DIR", nb_dir)
        monkeypatch.setattr(run, "PARAMS_DIR", params_dir)
        (tmp_path / "no_values.yaml").write_text("[]\n")
        monkeypatch.setattr(report, "PAPER_VALUES", tmp_path / "no_values.yaml")
        monkeypatch.setattr(report, "CLAIMS", tmp_path / "no_claims.yaml")
        monkeypatch.setattr(report, "DATA_DIR", tmp_path / "results")
        monkeypatch.setattr(report, "RESULTS", tmp_path / "RESULTS.md")
        monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setenv("AVAE_FIGURES_DIR", str(tmp_path / "figures"))
        return tmp_path

    return make

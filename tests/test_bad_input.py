"""Bad input gets a clear error: its type, and a message naming the problem (and the fix), not an obscure torch error.

Complements test_train.py (wrong-architecture checkpoints, fit options), test_data.py (missing / corrupt gzip files),
test_gans.py (DCGAN network shapes) and test_runner.py (unknown experiment).
"""
from __future__ import annotations

import struct

import pytest
import torch

from lib import registry

METHODS = registry.names("nets")
X_SHAPE = (1, 28, 28)


def _tiny(method: str, x_shape=X_SHAPE):
    return registry.build(method, x_shape=x_shape, z_dim=2, hidden=(8,), noise_dim=4, adversary_hidden=(8,), n_flows=2,
                          n_basis=2, decoder_noise_dim=2)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {m: _tiny(m) for m in METHODS}


def _binary(*shape):
    return torch.bernoulli(torch.full(shape, 0.5))


# ------------------------------------------------------------------------------------------------- method losses
@pytest.mark.parametrize("method", METHODS)
def test_flat_images_are_a_shape_error_for_every_player(models, method):
    """(B, 784) instead of (B, 1, 28, 28): the MLP trunks would flatten it silently, the decoders would fail deep
    inside torch (or, for the adversary steps, not at all)."""
    m = models[method]
    for player in m.players:
        with pytest.raises(ValueError, match=r"expects x of shape \(B, 1, 28, 28\), got \(3, 784\).*x\.view"):
            m.loss(player, _binary(3, 784))
    if hasattr(m, "elbo_terms"):
        with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
            m.elbo_terms(_binary(3, 784))


@pytest.mark.parametrize("method", ["vae", "avb", "asvae", "bavae"])
def test_integer_or_double_images_are_a_dtype_error(models, method):
    m = models[method]
    player = next(iter(m.players))
    with pytest.raises(TypeError, match=r"floating-point.*x\.float\(\) / 255"):
        m.loss(player, (torch.rand(3, *X_SHAPE) * 255).to(torch.uint8))
    with pytest.raises(TypeError, match=r"dtype torch\.float64 but the model's parameters are torch\.float32"):
        m.loss(player, torch.rand(3, *X_SHAPE, dtype=torch.float64))


def test_decoder_log_prob_checks_its_input():
    dec = _tiny("vae").decoder
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"BernoulliDecoder\.log_prob expects x of shape \(B, 1, 28, 28\)"):
        dec.log_prob(_binary(3, 784), z)
    assert dec.log_prob(_binary(1, *X_SHAPE), z).shape == (3,)  # a batch of one still broadcasts
    gauss = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(8,), likelihood="gaussian").decoder
    with pytest.raises(ValueError, match=r"GaussianDecoder\.log_prob expects x of shape \(B, 4\)"):
        gauss.log_prob(torch.rand(3, 2, 2), z)


@pytest.mark.parametrize("x_shape,error,match", [(784, TypeError, "x_shape must be a tuple of ints"),
                                                 ((1, 0, 28), ValueError, "positive ints"),
                                                 ((1, 28.0, 28), ValueError, "positive ints")])
@pytest.mark.parametrize("method", ["vae", "bavae"])
def test_registry_build_rejects_a_malformed_x_shape(method, x_shape, error, match):
    with pytest.raises(error, match=match):
        registry.build(method, x_shape=x_shape, z_dim=2, hidden=(8,))


def test_registry_build_rejects_a_non_positive_z_dim_and_names_the_known_methods():
    with pytest.raises(ValueError, match="z_dim must be a positive int, got 0"):
        registry.build("vae", x_shape=(4,), z_dim=0, hidden=(8,))
    with pytest.raises(ValueError, match="unknown method 'AVB'.*'avb_ac'.*'bavae_h'"):
        registry.build("AVB", x_shape=(4,), z_dim=2)
    with pytest.raises(ValueError, match="unknown method 'dcgan-vae'.*'dcgan_vae'.*'vaegan'.*'bigan'"):
        registry.build("dcgan-vae", x_shape=(1, 28, 28), z_dim=2)


def test_numpy_and_torch_sizes_are_valid_x_shapes():
    import numpy as np

    assert _tiny("vae", x_shape=torch.Size([1, 28, 28])).decoder.x_shape == X_SHAPE
    assert _tiny("vae", x_shape=tuple(np.array([1, 28, 28]))).decoder.x_shape == X_SHAPE


# ------------------------------------------------------------------------------------------------- evaluation
def _evaluators():
    from lib.ais import evaluate_ais
    from lib.evaluate import evaluate_elbo, evaluate_log_px, iwae_log_px

    return {
        "iwae_log_px": lambda m, x, **kw: iwae_log_px(m, x, k=2, **kw),
        "evaluate_log_px": lambda m, x, **kw: evaluate_log_px(m, x, k=2, **kw),
        "evaluate_elbo": lambda m, x, **kw: evaluate_elbo(m, x, **kw),
        "evaluate_ais": lambda m, x, **kw: evaluate_ais(m, x, n_steps=2, n_chains=1, n_leapfrog=1, progress=False,
                                                        **kw),
    }


@pytest.mark.parametrize("name", sorted(_evaluators()))
@pytest.mark.parametrize("bad", [2.0, -0.5, float("nan")])
def test_bernoulli_evaluation_rejects_pixels_outside_0_1(models, name, bad):
    """A Bernoulli log-likelihood of a pixel value 2 or -0.5 is a finite number, not a log-probability: the estimates
    were silently wrong (e.g. positive 'log-likelihoods')."""
    x = _binary(4, *X_SHAPE)
    x[1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match=rf"{name}: a Bernoulli likelihood needs pixels in \[0, 1\].*x\.float\(\) / 255"):
        _evaluators()[name](models["vae"], x)


@pytest.mark.parametrize("name", sorted(_evaluators()))
def test_evaluation_rejects_flat_images_and_empty_batches(models, name):
    with pytest.raises(ValueError, match=rf"{name} expects x of shape \(B, 1, 28, 28\), got \(4, 784\)"):
        _evaluators()[name](models["avb_ac"], _binary(4, 784))
    if name != "iwae_log_px":
        with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
            _evaluators()[name](models["avb_ac"], _binary(4, *X_SHAPE), batch_size=0)


def test_iwae_rejects_a_zero_chunk(models):
    from lib.evaluate import iwae_log_px

    with pytest.raises(ValueError, match="chunk must be an int >= 1, got 0"):
        iwae_log_px(models["vae"], _binary(2, *X_SHAPE), k=4, chunk=0)


# ------------------------------------------------------------------------------------------------- objectives
def test_weights_of_another_shape_do_not_broadcast_silently():
    from lib.losses import discriminator_loss, gaussian_kl, kl_fgan_objective

    t, w = torch.randn(5), torch.full((5,), 0.2)
    with pytest.raises(ValueError, match=r"w_p must have the shape of t_p, \(5,\), got \(5, 1\)"):
        kl_fgan_objective(t, t, w.view(5, 1), w)
    with pytest.raises(ValueError, match=r"w_q must have the shape of t_q"):
        kl_fgan_objective(t, t, w, w[:4])
    with pytest.raises(ValueError, match=r"f_neg / w_neg.*\(5,\), got \(1, 5\)"):
        discriminator_loss(t, t, w, w.view(1, 5))
    with pytest.raises(ValueError, match=r"mu \(B, Z\) and sigma \(B, Z\) or \(Z,\), got \(4, 3\) and \(2,\)"):
        gaussian_kl(torch.zeros(4, 3), torch.ones(2))
    assert torch.isfinite(kl_fgan_objective(t, t, w, w)) and torch.isfinite(discriminator_loss(t, t, w, w))
    assert gaussian_kl(torch.zeros(4, 3), torch.ones(3)).shape == (4,)


# ------------------------------------------------------------------------------------------------- run settings
def test_unknown_profile_names_the_known_ones():
    from lib.runs import resolve_profile

    with pytest.raises(ValueError, match=r"unknown profile 'fast': use one of \('auto', 'quick', 'standard', 'full'\)"):
        resolve_profile("fast")


def test_cuda_requested_without_cuda(monkeypatch):
    from lib.runs import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for dev in ("cuda", "cuda:0"):
        with pytest.raises(RuntimeError, match=f"device '{dev}' was requested but CUDA is not available.*'cpu' or 'auto'"):
            resolve_device(dev)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_missing_cuda_index_mps_and_nonsense_devices(monkeypatch):
    from lib.runs import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"'cuda:3' was requested but this machine has 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match=r"unknown device 'gpu': use 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")


# ------------------------------------------------------------------------------------------------- parameter files
@pytest.fixture
def params_dir(tmp_path, monkeypatch):
    from paper_reproductions import report, run

    d = tmp_path / "params"
    d.mkdir()
    monkeypatch.setattr(run, "PARAMS_DIR", d)
    monkeypatch.setattr(report, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(report, "DATA_DIR", tmp_path / "results")
    monkeypatch.setenv("AVAE_RUNS_DIR", str(tmp_path / "runs"))
    return d


GOOD = "notebook: 11_avb_toy_4points\nprofile: quick\nseeds: [0]\n"


@pytest.mark.parametrize("text,match", [
    (GOOD + "paramters: {STEPS: 5}\n", r"unknown key\(s\) \['paramters'\].*under 'parameters:'"),
    (GOOD + "parameters: [STEPS, 5]\n", "parameters must be a mapping"),
    ("notebook: 11_avb_toy_4points\nseeds: 0\n", r"seeds must be a list of integers, e\.g\. \[0, 1, 2\], got 0"),
    ("- 11_avb_toy_4points\n", "must be a mapping"),
    ("notebook: [unclosed\n", "not valid YAML"),
    ("notebook: 11_avb_toy_4points\nprofile: full\n", "says profile 'full' but is named for 'quick'"),
    ("notebook: 99_missing\n", "notebook '99_missing' not found"),
])
def test_malformed_parameter_files_are_named(params_dir, text, match):
    from paper_reproductions import run

    (params_dir / "11_avb_toy_4points.quick.yaml").write_text(text)
    with pytest.raises(run.ParamFileError, match=r"11_avb_toy_4points\.quick\.yaml: " + match):
        run.load_param_files("quick")


@pytest.mark.parametrize("params,match,at_load", [
    ("{STEPZ: 5}", r"unknown parameter\(s\) \['STEPZ'\]; the notebook's parameters are \[", True),
    ("{SEED: 3}", r"parameter\(s\) \['SEED'\] are set by the runner", False),
])
def test_unknown_or_reserved_notebook_parameter(params_dir, params, match, at_load, capsys):
    """Checked against the notebook's ``parameters`` cell before papermill runs anything (no run folder is made): an
    unknown name already when the parameter files are loaded, a name the runner sets when a notebook is run."""
    from paper_reproductions import report, run

    (params_dir / "11_avb_toy_4points.quick.yaml").write_text(GOOD + f"parameters: {params}\n")
    if at_load:
        with pytest.raises(run.ParamFileError, match=match):
            run.load_param_files("quick")
    else:
        spec, = run.load_param_files("quick")
        with pytest.raises(run.ParamFileError, match=match):
            run.run_notebook(spec, "quick", 0, "20260101-000000")
    assert run.main(["--profile", "quick"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (params_dir.parent / "runs" / "11_avb_toy_4points").exists()
    assert not report.RESULTS.exists() and not report.DATA_DIR.exists()


# ------------------------------------------------------------------------------------------------- checkpoints
def _save(tmp_path, model, name="ckpt.pt"):
    from lib.train import make_optimizers, save_checkpoint

    save_checkpoint(tmp_path / name, model, make_optimizers(model, {p: 1e-3 for p in model.players}), step=3)
    return tmp_path / name


def test_truncated_or_foreign_checkpoint_is_a_clear_error_and_leaves_the_model_alone(tmp_path):
    from lib.train import load_checkpoint

    m = _tiny("avb", x_shape=(4,))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    path = _save(tmp_path, _tiny("avb", x_shape=(4,)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="unreadable.*delete it"):
        load_checkpoint(path, m)
    torch.save(m.state_dict(), tmp_path / "weights.pt")  # a bare state dict is not a checkpoint
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "weights.pt", m)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("saved,loaded", [("avb", "avb_ac"), ("bavae", "bavae_h"), ("asvae", "vae")])
def test_checkpoint_of_another_method_or_architecture(tmp_path, saved, loaded):
    from lib.train import load_checkpoint

    path = _save(tmp_path, _tiny(saved, x_shape=(4,)))
    with pytest.raises(ValueError, match="another architecture|for method"):
        load_checkpoint(path, _tiny(loaded, x_shape=(4,)))


def test_checkpoint_of_another_variant_with_the_same_shapes(tmp_path):
    from lib.train import load_checkpoint

    path = _save(tmp_path, _tiny("asvae_r", x_shape=(4,)))
    with pytest.raises(ValueError, match="variant"):
        load_checkpoint(path, _tiny("asvae", x_shape=(4,)))


# ------------------------------------------------------------------------------------------------- MNIST files
def test_wrong_idx_magic_is_named_by_the_parsers():
    from lib.data import DataError, _parse_images, _parse_labels

    labels = struct.pack(">II", 2049, 2) + bytes([3, 4])
    images = struct.pack(">IIII", 2051, 1, 2, 2) + bytes(4)
    assert _parse_images(images, "img").shape == (1, 2, 2) and _parse_labels(labels, "lab").tolist() == [3, 4]
    with pytest.raises(DataError, match=r"t10k-images: wrong IDX magic 2049 for images \(expected 2051\)\. Restore"):
        _parse_images(labels + bytes(8), "t10k-images")  # a labels file where the images should be
    with pytest.raises(DataError, match=r"lab: wrong IDX magic 2051 for labels \(expected 2049\)"):
        _parse_labels(images, "lab")


def test_corrupt_uncompressed_file_is_named(tmp_path):
    """torchvision's download leaves plain IDX files; a damaged one is reported by its own (plain) path."""
    from lib.data import MNIST_MD5, DataError, load_mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 1, 28, 28) + bytes(100))
    expected = MNIST_MD5["train-images-idx3-ubyte"]
    with pytest.raises(DataError, match=rf"raw/train-images-idx3-ubyte is corrupt: .*expected {expected}"):
        load_mnist(tmp_path)

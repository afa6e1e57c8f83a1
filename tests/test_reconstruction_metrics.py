"""Reconstruction metrics: MSE / RMSE by hand, and LPIPS offline (missing weights, then plumbing)."""
import pytest
import torch

from lib.inception_metrics import MetricUnavailable
from lib.reconstruction_metrics import lpips_distance, reconstruction_errors


# ---------------------------------------------------------------------------------------------- reconstructions

def test_reconstruction_errors_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_rec = torch.stack([torch.full((1, 2, 2), 0.5), torch.full((1, 2, 2), 0.2)])  # MSE 0.25 and 0.04
    out = reconstruction_errors(x, x_rec)
    assert out["mse"]["value"] == pytest.approx(0.145) and out["mse"]["sem"] == pytest.approx(0.105)  # |a-b| / 2
    assert out["rmse"]["value"] == pytest.approx(0.35) and out["rmse"]["sem"] == pytest.approx(0.15)
    assert out["rmse_255"]["value"] == pytest.approx(0.35 * 255) and out["rmse"]["n"] == 2
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_errors(x, x_rec[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruction_errors(x, x_rec * 4)


def test_lpips_without_backbone_weights_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache, whatever this machine holds
    x = torch.rand(3, 1, 28, 28)
    with pytest.raises(MetricUnavailable, match=r"alexnet-owt-7be5be79\.pth.*hub/checkpoints"):
        lpips_distance(x, x)


def test_lpips_runs_once_backbone_weights_are_in_the_hub_cache(monkeypatch, tmp_path):
    """Plumbing only: a *random* SqueezeNet stands in for the ImageNet one, which cannot be downloaded here."""
    torchvision = pytest.importorskip("torchvision")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), ckpt)
    x = torch.rand(3, 1, 28, 28)
    same, other = lpips_distance(x, x, net="squeeze"), lpips_distance(x, torch.rand(3, 1, 28, 28), net="squeeze")
    assert same["value"] == pytest.approx(0.0, abs=1e-6) and other["value"] > 1e-4 and other["n"] == 3

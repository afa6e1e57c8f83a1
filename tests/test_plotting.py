"""lib.plotting.samples_and_reconstructions: the figure holds exactly the images it was given, in model order."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lib.plotting import samples_and_reconstructions  # noqa: E402


def _tiles(grid: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    """The (h, w) grey images of a make_grid picture (H, W, 3) with 1-pixel padding, row by row."""
    rows, cols = (grid.shape[0] - 1) // (h + 1), (grid.shape[1] - 1) // (w + 1)
    assert grid.shape[:2] == (rows * (h + 1) + 1, cols * (w + 1) + 1)
    return [grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w, 0]
            for r in range(rows) for c in range(cols)]


def test_samples_and_reconstructions_shows_each_model_s_images_in_order():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 5, generator=g)
    models = {"a": {"samples": torch.rand(8, 1, 4, 5, generator=g), "rec": torch.rand(3, 1, 4, 5, generator=g)},
              "b": {"samples": torch.rand(6, 1, 4, 5, generator=g), "rec": torch.rand(3, 1, 4, 5, generator=g)},
              "gan": {"samples": torch.rand(4, 1, 4, 5, generator=g), "rec": None}}
    calls = []

    def sample(name, model):
        calls.append(("sample", name, torch.is_grad_enabled()))
        return model["samples"]

    def reconstruct(name, model, xs):
        calls.append(("reconstruct", name, torch.is_grad_enabled()))
        assert xs is x
        if model["rec"] is None:
            raise NotImplementedError("no encoder")
        return model["rec"]

    fig = samples_and_reconstructions(models, x, sample, reconstruct, labels={"a": "A"}, nrow=4, panel_size=(2, 3),
                                      sample_caption=lambda name: f"caption {name}", title="T")
    try:
        assert calls == [(step, name, False) for name in models for step in ("sample", "reconstruct")]
        top, bottom = fig.axes[:3], fig.axes[3:]  # subplots(2, 3): row-major
        assert tuple(fig.get_size_inches()) == (6, 3) and fig.get_suptitle() == "T"
        assert [ax.get_title() for ax in top] == ["A: caption a", "b: caption b", "gan: caption gan"]
        assert [ax.get_title() for ax in bottom[:2]] == ["A: data | reconstruction", "b: data | reconstruction"]
        assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 1, 1, 1, 0]
        assert "no encoder" in bottom[2].texts[0].get_text()
        for ax, (name, m) in zip(top, models.items()):  # every sample, in order; blank (white) tiles after them
            tiles = _tiles(np.asarray(ax.get_images()[0].get_array()), 4, 5)
            assert len(tiles) == 4 * -(-len(m["samples"]) // 4)
            for i, tile in enumerate(tiles):
                want = m["samples"][i, 0].numpy() if i < len(m["samples"]) else np.ones((4, 5))
                np.testing.assert_array_equal(tile, want)
        for ax, m in zip(bottom[:2], (models["a"], models["b"])):  # data, reconstruction, data, ...
            tiles = _tiles(np.asarray(ax.get_images()[0].get_array()), 4, 5)
            assert len(tiles) == 8  # 6 images in rows of 4
            for i in range(3):
                np.testing.assert_array_equal(tiles[2 * i], x[i, 0].numpy())
                np.testing.assert_array_equal(tiles[2 * i + 1], m["rec"][i, 0].numpy())
    finally:
        plt.close(fig)


def test_samples_and_reconstructions_defaults_label_with_the_name_and_a_fixed_caption():
    x = torch.zeros(2, 1, 3, 3)
    fig = samples_and_reconstructions({"vae": None}, x, lambda n, m: torch.ones(2, 1, 3, 3), lambda n, m, xs: xs)
    try:
        assert fig.axes[0].get_title() == "vae: samples" and tuple(fig.get_size_inches()) == pytest.approx((3.2, 6.6))
        assert fig.get_suptitle() == ""
    finally:
        plt.close(fig)

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
        assert [ax.get_title() for ax in top] == ["A\ncaption a", "b\ncaption b", "gan\ncaption gan"]
        assert [ax.get_title() for ax in bottom[:2]] == ["A\ndata | reconstruction", "b\ndata | reconstruction"]
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
        assert fig.axes[0].get_title() == "vae\nsamples" and tuple(fig.get_size_inches()) == pytest.approx((7.0, 14.8))
        assert fig.get_suptitle() == ""
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ style and savefig
def _figure(width: float):
    fig, ax = plt.subplots(figsize=(width, 2.0), layout="constrained")
    ax.plot([0, 1, 2], [0, 1, 4], label=r"$\log p_\theta(x\mid z)$")
    ax.set(xlabel="iteration", ylabel="nats", title="probe")
    ax.legend()
    return fig


def test_style_sets_readable_sizes_and_truetype_fonts():
    import matplotlib as mpl

    from lib import plotting

    mpl.rcParams.update({"legend.fontsize": 6, "pdf.fonttype": 3})
    plotting.use_style()
    fp = mpl.font_manager.FontProperties
    for key in ("font.size", "axes.labelsize", "axes.titlesize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize", "legend.title_fontsize"):
        assert fp(size=mpl.rcParams[key]).get_size_in_points() >= 8, key
    assert fp(size=mpl.rcParams["legend.fontsize"]).get_size_in_points() == 8
    assert mpl.rcParams["pdf.fonttype"] == 42 and mpl.rcParams["ps.fonttype"] == 42
    assert (plotting.ONE_COLUMN, plotting.TWO_COLUMN) == (3.3, 7.0)


def test_savefig_writes_png_and_pdf_with_embedded_truetype_fonts_and_same_bytes_twice(tmp_path, monkeypatch):
    import matplotlib as mpl

    from lib import plotting

    monkeypatch.setenv("AVAE_FIGURES_DIR", str(tmp_path))
    fig = _figure(plotting.ONE_COLUMN)
    try:
        with mpl.rc_context({"pdf.fonttype": 3}):  # savefig embeds TrueType whatever the caller's rcParams
            paths = plotting.savefig(fig, "probe")
        assert paths == [tmp_path / "quick" / "probe.png", tmp_path / "quick" / "probe.pdf"]
        first = {p.suffix: p.read_bytes() for p in paths}
        plotting.savefig(fig, "probe")
        assert {p.suffix: p.read_bytes() for p in paths} == first
    finally:
        plt.close(fig)
    png, pdf = first[".png"], first[".pdf"]
    assert png.startswith(b"\x89PNG") and pdf.startswith(b"%PDF")
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf.replace(b" ", b"")
    width_px = int.from_bytes(png[16:20], "big")  # IHDR, independent of lib.plotting._png_size
    assert 0.8 * 3.3 * 200 < width_px <= 3.3 * 200 + 1  # 200 dpi, cropped to the content


def test_savefig_refuses_a_figure_wider_than_two_columns(tmp_path, monkeypatch):
    from lib import plotting

    monkeypatch.setenv("AVAE_FIGURES_DIR", str(tmp_path))
    ok, wide = _figure(plotting.TWO_COLUMN), _figure(plotting.TWO_COLUMN + 0.5)
    try:
        assert len(plotting.savefig(ok, "ok")) == 2
        with pytest.raises(ValueError, match=r"'wide' is 7\.\d+ in .* limit is TWO_COLUMN = 7\.0 in"):
            plotting.savefig(wide, "wide")
    finally:
        plt.close(ok)
        plt.close(wide)
    assert sorted(p.name for p in (tmp_path / "quick").iterdir()) == ["ok.pdf", "ok.png"]

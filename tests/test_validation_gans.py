"""paper_reproductions.validation_gans: the validation-split checks behind notebook 41's standard profile."""
import json

import pytest

from paper_reproductions import validation_gans


def _spy_on_builds(monkeypatch, *attributes):
    """Record (registry name, *the built model's attributes) for every model validation_gans builds."""
    built = []
    real_build = validation_gans.registry.build

    def spy(name, **kw):
        net = real_build(name, **kw)
        built.append((name, *(getattr(net, a) for a in attributes)))
        return net

    monkeypatch.setattr(validation_gans.registry, "build", spy)
    return built


def test_vaegan_record_matches_direct_calls_and_gamma_reaches_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(validation_gans, "DATA_DIR", tmp_path)
    built = _spy_on_builds(monkeypatch, "gamma", "beta", "dis_batches")
    argv = ["--model", "vaegan", "--steps", "2", "--eval-every", "1", "--gamma", "0.1", "1", "--beta", "0.5"]
    assert validation_gans.main(argv) == 0
    assert built == [("vaegan", 0.1, 0.5, "separate"), ("vaegan", 1.0, 0.5, "separate")]
    rec = json.loads((tmp_path / "validation" / "mnist_vaegan_w16_s2_separate_beta0.5.json").read_text())
    assert rec["command"].endswith(" ".join(argv)) and [r["options"]["gamma"] for r in rec["runs"]] == [0.1, 1.0]
    rows = rec["runs"][1]["rows"]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["fd"] > r["heldout_fd"] and 0 < r["mse"] and r["is"] >= 1 for r in rows)
    direct = validation_gans.validation_curve("vaegan", dataset="mnist", width=16, steps=2, eval_every=1, seed=0,
                                              lr=2e-4, opts=dict(gamma=1.0, beta=0.5, dis_batches="separate"))
    for a, b in zip(rows, direct):  # the same seed: the same training and the same scoring draws
        assert (a["fd"], a["is"], a["mse"], a["mse_other"]) == (b["fd"], b["is"], b["mse"], b["mse_other"])


def test_avae_lz_variant_reaches_the_model_and_names_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(validation_gans, "DATA_DIR", tmp_path)
    built = _spy_on_builds(monkeypatch, "lz_variant", "beta")
    for variant in ("code", "slides"):
        assert validation_gans.main(["--model", "avae", "--steps", "1", "--eval-every", "1", "--lz-variant", variant]) == 0
    assert built == [("avae", "code", 0.0625), ("avae", "slides", 0.0625)]
    code = json.loads((tmp_path / "validation" / "mnist_avae_w16_s1_lz_code.json").read_text())
    slides = json.loads((tmp_path / "validation" / "mnist_avae_w16_s1_lz_slides.json").read_text())
    assert code["runs"][0]["options"]["lz_variant"] == "code" and slides["runs"][0]["options"]["lz_variant"] == "slides"
    assert code["runs"][0]["rows"][0]["last"] != slides["runs"][0]["rows"][0]["last"]  # another generator loss


@pytest.mark.parametrize("bad", [["--model", "gan", "--steps", "0"], ["--model", "gan", "--eval-every", "5", "--steps", "2"],
                                 ["--model", "vaegan", "--gamma", "-1"], ["--model", "flow"],
                                 ["--model", "avae", "--lz-variant", "precision"]])
def test_bad_arguments_stop_with_a_usage_error(bad, tmp_path, monkeypatch):
    monkeypatch.setattr(validation_gans, "DATA_DIR", tmp_path)
    with pytest.raises(SystemExit) as err:
        validation_gans.main(bad)
    assert err.value.code == 2 and not (tmp_path / "validation").exists()

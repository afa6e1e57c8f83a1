"""paper_reproductions.validation: the validation-split check behind a standard-profile setting."""
import json

import pytest

from paper_reproductions import validation


def test_record_rows_match_direct_calls_and_beta1_reaches_adam(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "DATA_DIR", tmp_path)
    argv = ["--model", "flow_vae", "--beta1", "0.5", "0.9", "--steps", "6", "--n-val", "40", "--hidden", "16", "16",
            "--z-dim", "4"]
    assert validation.main(argv) == 0
    rec = json.loads((tmp_path / "validation" / "flow_vae_z4_h16_beta1.json").read_text())
    assert rec["command"].endswith(" ".join(argv)) and [r["beta1"] for r in rec["rows"]] == [0.5, 0.9]
    kw = dict(steps=6, lr=3e-4, seed=0, n_val=40, hidden=(16, 16), n_flows=8, z_dim=4)
    direct = {b: validation.validation_neg_elbo("flow_vae", beta1=b, **kw) for b in (0.5, 0.9)}
    for row in rec["rows"]:  # the same seed gives the same training and the same evaluation draws
        assert row["val_neg_elbo"] == pytest.approx(direct[row["beta1"]], rel=0, abs=0)
    assert direct[0.5]["value"] != direct[0.9]["value"]  # beta1 changes the optimiser's path
    assert direct[0.5]["n"] == 40 and direct[0.5]["value"] == pytest.approx(direct[0.5]["rec"] + direct[0.5]["kl"])


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--n-val", "20000"], ["--beta1", "1.0"]])
def test_bad_arguments_stop_with_a_usage_error(bad, tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "DATA_DIR", tmp_path)
    with pytest.raises(SystemExit) as err:
        validation.main(bad)
    assert err.value.code == 2 and not (tmp_path / "validation").exists()


def test_avb_trains_its_adversary_at_twice_the_primal_rate_and_is_judged_by_iwae(tmp_path, monkeypatch):
    """AVB's players are primal and adversary (lr and 2 lr, as notebook 12); --k-iwae adds the IWAE-k bound on the
    first --n-val-iwae validation images, the criterion for AVB (its ELBO uses the adversary's KL estimate)."""
    import torch

    monkeypatch.setattr(validation, "DATA_DIR", tmp_path)
    rates = []
    real_fit = validation.fit

    def spy(model, sampler, *, lr, **kw):
        rates.append(dict(lr))
        return real_fit(model, sampler, lr=lr, **kw)

    monkeypatch.setattr(validation, "fit", spy)
    argv = ["--model", "avb_ac", "--beta1", "0.5", "--steps", "4", "--lr", "1e-3", "--n-val", "30", "--hidden", "16",
            "16", "--z-dim", "4", "--k-iwae", "5", "--n-val-iwae", "12"]
    assert validation.main(argv) == 0
    assert rates == [{"primal": 1e-3, "adversary": 2e-3}]
    row, = json.loads((tmp_path / "validation" / "avb_ac_z4_h16_beta1.json").read_text())["rows"]
    iwae = row["val_neg_elbo"]["iwae"]
    assert (iwae["n"], iwae["k"]) == (12, 5) and torch.isfinite(torch.tensor(iwae["value"]))
    with pytest.raises(SystemExit):
        validation.main(["--k-iwae", "-1"])

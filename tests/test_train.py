"""The multi-player loop: gradient hygiene, checkpoints, resume, loud failure, divergence guard."""
import json
import math

import pytest
import torch

from lib import registry
from lib.avb import AVB
from lib.toys import FourPointSampler
from lib.train import DivergenceError, fit, load_checkpoint, make_optimizers, save_checkpoint


def _avb(**kw):
    return registry.build("avb", x_shape=(4,), z_dim=2, hidden=(16,), noise_dim=4, adversary_hidden=(16,), **kw)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


class OnlyOnePlayer(AVB):
    """AVB whose schedule steps a single player, to observe what each kind of step touches."""
    player = "adversary"

    @property
    def schedule(self):
        return [(self.player, 1)]


@pytest.mark.parametrize("player,moves,frozen", [("adversary", "adversary", ("encoder", "decoder")),
                                                 ("primal", "encoder", ("adversary",))])
def test_a_step_changes_only_its_own_player(player, moves, frozen):
    base = _avb()
    m = OnlyOnePlayer(base.encoder, base.decoder, base.adversary)
    m.player = player
    before = {name: _snapshot(getattr(m, name)) for name in ("encoder", "decoder", "adversary")}
    fit(m, FourPointSampler(64), steps=3, lr={"adversary": 1e-2, "primal": 1e-2}, progress=False)
    assert _changed(before[moves], getattr(m, moves)), f"a {player} step must change the {moves}"
    for name in frozen:
        assert not _changed(before[name], getattr(m, name)), f"a {player} step changed the {name}"
        assert all(p.grad is None for p in getattr(m, name).parameters()), f"{name} received gradients"


def test_fused_adam_makes_the_same_updates_as_the_per_tensor_loop(tmp_path):
    """fit's default fused Adam (one kernel per step) against torch's reference per-tensor Adam: same seed, same
    batches, 30 iterations of both AVB players; the parameters agree to float32 rounding, and fit_config.json
    records which one ran."""
    runs = {}
    for fused in (False, True):
        torch.manual_seed(0)
        m = _avb()
        fit(m, FourPointSampler(32), steps=30, lr={"adversary": 1e-2, "primal": 1e-2}, fused_adam=fused,
            run_dir=tmp_path / str(fused), progress=False)
        runs[fused] = m.state_dict()
        assert json.loads((tmp_path / str(fused) / "fit_config.json").read_text())["fused_adam"] is fused
    assert any(not torch.equal(runs[True][k], v) for k, v in _avb().state_dict().items())  # it trained
    for k, v in runs[False].items():
        torch.testing.assert_close(runs[True][k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    a = _avb(adversary_steps=2)
    fit(a, FourPointSampler(32), steps=10, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path / "a",
        progress=False)

    torch.manual_seed(0)
    b = _avb(adversary_steps=2)
    fit(b, FourPointSampler(32), steps=6, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path / "b",
        ckpt_every=3, progress=False)
    torch.manual_seed(123)  # a different process would start from a different RNG state
    c = _avb(adversary_steps=2)
    hist = fit(c, FourPointSampler(32), steps=10, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path / "b",
               progress=False, log_every=1)
    # resumed after step 6: the history starts with the row logged by the first call (at its last step, 6)
    assert [r["step"] for r in hist] == [6, 7, 8, 9, 10]
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]), k


def test_fit_on_a_finished_run_trains_nothing_and_returns_its_whole_history(tmp_path):
    """fit again on a run folder whose ckpt.pt is at ``steps`` (a rebuild of a finished run): zero iterations, the
    same parameters bit for bit, the same history as the first call (read back from metrics.jsonl), the RNG state
    of the end of training, and fit_time.json / fit_config.json / metrics.jsonl untouched."""
    lr = {"adversary": 1e-3, "primal": 1e-3}
    torch.manual_seed(0)
    a = _avb(adversary_steps=2)
    first = fit(a, FourPointSampler(16), steps=8, lr=lr, run_dir=tmp_path, log_every=3, ckpt_every=4, progress=False)
    after_training = torch.get_rng_state()
    files = {n: (tmp_path / n).read_bytes() for n in ("fit_time.json", "fit_config.json", "metrics.jsonl")}
    assert [r["step"] for r in first] == [3, 6, 8]
    torch.manual_seed(123)  # another process: another RNG state and fresh weights
    b = _avb(adversary_steps=2)
    calls = []
    b.loss = lambda *args: calls.append(args)  # any training step would call the loss
    second = fit(b, FourPointSampler(16), steps=8, lr=lr, run_dir=tmp_path, log_every=3, ckpt_every=4, progress=False)
    assert calls == [] and second == first
    assert torch.equal(torch.get_rng_state(), after_training)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert {n: (tmp_path / n).read_bytes() for n in files} == files


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    m = _avb()
    opts = make_optimizers(m, {"adversary": 1e-3, "primal": 1e-3})
    save_checkpoint(tmp_path / "ckpt.pt", m, opts, step=17)
    m2 = _avb()
    assert load_checkpoint(tmp_path / "ckpt.pt", m2) == 17
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    other = registry.build("avb", x_shape=(4,), z_dim=3, hidden=(16,), noise_dim=4, adversary_hidden=(16,))
    with pytest.raises(ValueError, match="another architecture"):
        load_checkpoint(tmp_path / "ckpt.pt", other)
    vae = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(16,))
    with pytest.raises(ValueError, match="for method AVB, not VAE"):
        load_checkpoint(tmp_path / "ckpt.pt", vae)


def test_non_finite_loss_names_the_step_and_player():
    m = _avb()
    with torch.no_grad():
        m.adversary.net[-1].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="iteration 0, player 'adversary'"):
        fit(m, FourPointSampler(8), steps=2, lr={"adversary": 1e-3, "primal": 1e-3}, progress=False)


def test_learning_rates_must_name_the_players():
    with pytest.raises(ValueError, match="missing \\['primal'\\]"):
        fit(_avb(), FourPointSampler(8), steps=1, lr={"adversary": 1e-3}, progress=False)


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path):
    """A run killed between a log row and the next checkpoint leaves rows (and maybe half a line) that the resumed
    run logs again; fit must keep each step once."""
    torch.manual_seed(0)
    m = _avb()
    lr = {"adversary": 1e-3, "primal": 1e-3}
    fit(m, FourPointSampler(16), steps=6, lr=lr, run_dir=tmp_path, ckpt_every=3, log_every=1, progress=False)
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # as if iterations 7 and 8 ran, then SIGKILL mid-write
        fh.write(json.dumps({"step": 7, "stale": 0.0}) + "\n" + json.dumps({"step": 8}) + "\n{\"step\": 9, \"adv")
    (tmp_path / ".ckpt.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # what SIGKILL inside a write leaves
    fit(_avb(), FourPointSampler(16), steps=10, lr=lr, run_dir=tmp_path, log_every=1, progress=False)
    assert not list(tmp_path.glob(".*.tmp")), "leftover temporary files are swept at the start of a run"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert set(rows[6]) == set(rows[5]) and "stale" not in rows[6]  # the resumed run's row, not the stale one
    timing = json.loads((tmp_path / "fit_time.json").read_text())  # this call's share: iterations 7..10
    assert timing["resumed_at"] == 6 and timing["iterations"] == 4 and timing["device"] == "cpu"
    assert timing["seconds"] > 0 and timing["iterations_per_s"] == pytest.approx(4 / timing["seconds"])


def _exploding_adversary_lr(monkeypatch, at_step: int, once: bool):
    """Make the adversary's Adam learning rate jump to 1e25 at its ``at_step``-th step (every time that step
    count is reached, or only the first time)."""
    import lib.train

    real, fired = lib.train.make_optimizers, []

    def make(method, lr, betas=(0.5, 0.999), **kw):
        opts = real(method, lr, betas, **kw)

        def hook(opt, args, kwargs):
            step = max((float(s["step"]) for s in opt.state.values() if "step" in s), default=0)
            if step + 1 >= at_step and not (once and fired):
                fired.append(step)
                for group in opt.param_groups:
                    group["lr"] = 1e25

        opts["adversary"].register_step_pre_hook(hook)
        return opts

    monkeypatch.setattr(lib.train, "make_optimizers", make)


def test_divergence_stops_at_the_step_naming_player_and_terms_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _exploding_adversary_lr(monkeypatch, at_step=4, once=False)
    torch.manual_seed(0)
    m = _avb()
    with pytest.raises(DivergenceError) as info:
        fit(m, FourPointSampler(16), steps=20, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path,
            ckpt_every=1, progress=False)
    err = info.value
    # the adversary's 4th step (iteration 3) takes the exploding learning rate; the primal step right after it is
    # the first to see non-finite values
    assert (err.step, err.player) == (3, "primal")
    assert "iteration 3, player 'primal'" in str(err) and "non-finite loss term(s)" in str(err)
    assert any(not math.isfinite(v) for v in err.terms.values())
    fresh = _avb()
    assert load_checkpoint(tmp_path / "ckpt.pt", fresh) == 3  # the last good state, loadable
    assert all(torch.isfinite(v).all() for v in fresh.state_dict().values())


def test_rollback_retries_with_a_lower_adversary_learning_rate(tmp_path, monkeypatch):
    _exploding_adversary_lr(monkeypatch, at_step=4, once=True)
    torch.manual_seed(0)
    m = _avb()
    fit(m, FourPointSampler(16), steps=12, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path, ckpt_every=2,
        log_every=1, progress=False, on_divergence="rollback", rollback_lr_factor=0.5)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in rows if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == 2  # back to the checkpoint before the divergence
    assert events[0]["lr"] == {"adversary": pytest.approx(5e-4)}  # the checkpoint's 1e-3, halved
    assert [r["step"] for r in rows if "event" not in r] == list(range(1, 13))
    assert all(torch.isfinite(v).all() for v in m.state_dict().values())
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["optimizers"]["adversary"]["param_groups"][0]["lr"] == pytest.approx(5e-4)  # kept on resume


def test_rollback_gives_up_after_max_rollbacks(monkeypatch):
    _exploding_adversary_lr(monkeypatch, at_step=4, once=False)
    torch.manual_seed(0)
    with pytest.raises(DivergenceError, match="iteration 3"):
        fit(_avb(), FourPointSampler(16), steps=12, lr={"adversary": 1e-3, "primal": 1e-3}, ckpt_every=2,
            progress=False, on_divergence="rollback", max_rollbacks=2)


def test_non_finite_gradient_with_finite_loss_names_the_parameters():
    m = _avb()
    w = m.adversary.net[-1].weight
    # sqrt at 0: the loss is 0, its gradient 0 * inf = NaN
    m.loss = lambda player, x: {"loss": (w * 0).sqrt().sum(), "term": (w * 0).sqrt().sum()}
    with pytest.raises(DivergenceError, match=r"finite loss terms but non-finite gradients in \['adversary\.net\.\d+\.weight'\]"):
        fit(m, FourPointSampler(8), steps=1, lr={"adversary": 1e-3, "primal": 1e-3}, progress=False)
    assert torch.isfinite(w).all()  # caught before the optimizer applied it


@pytest.mark.parametrize("bad", [dict(on_divergence="retry"), dict(compile="fast"), dict(rollback_lr_factor=2.0),
                                 dict(steps=-1)])
def test_bad_fit_options_are_clear_errors(bad):
    kw = dict(steps=1, lr={"adversary": 1e-3, "primal": 1e-3}, progress=False) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(_avb(), FourPointSampler(8), **kw)


def test_speed_flags_are_recorded_and_bf16_autocast_trains(tmp_path):
    torch.manual_seed(0)
    m = _avb()
    hist = fit(m, FourPointSampler(16), steps=3, lr={"adversary": 1e-3, "primal": 1e-3}, run_dir=tmp_path,
               log_every=1, progress=False, autocast_bf16=True)
    cfg = json.loads((tmp_path / "fit_config.json").read_text())
    assert cfg["autocast_bf16"] is True and cfg["compile"] is None and cfg["world_size"] == 1
    assert all(math.isfinite(v) for row in hist for v in row.values())

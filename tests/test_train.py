"""The multi-player loop: gradient hygiene, checkpoints, resume, loud failure."""
import pytest
import torch

from lib.avb import AVB
from lib.models import build_method
from lib.toys import FourPointSampler
from lib.train import fit, load_checkpoint, make_optimizers, save_checkpoint


def _avb(**kw):
    return build_method("avb", x_shape=(4,), z_dim=2, hidden=(16,), noise_dim=4, adversary_hidden=(16,), **kw)


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
    assert hist[0]["step"] == 7  # resumed after step 6
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]), k


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    m = _avb()
    opts = make_optimizers(m, {"adversary": 1e-3, "primal": 1e-3})
    save_checkpoint(tmp_path / "ckpt.pt", m, opts, step=17)
    m2 = _avb()
    assert load_checkpoint(tmp_path / "ckpt.pt", m2) == 17
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    other = build_method("avb", x_shape=(4,), z_dim=3, hidden=(16,), noise_dim=4, adversary_hidden=(16,))
    with pytest.raises(ValueError, match="another architecture"):
        load_checkpoint(tmp_path / "ckpt.pt", other)
    vae = build_method("vae", x_shape=(4,), z_dim=2, hidden=(16,))
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

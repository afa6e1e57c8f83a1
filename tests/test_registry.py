"""Every method of lib.registry, built small: it trains through lib.train.fit, samples, reconstructs (or says it cannot),
and its checkpoint round-trips exactly. A newly registered method is covered by registering it (its family needs an
entry in FAMILY below, the data and sizes of that family's tests); the registry's own errors; the critic declaration."""
from __future__ import annotations

import pytest
import torch

from lib import registry
from lib.data import BatchSampler
from lib.method import Method
from lib.train import fit, load_checkpoint

X_SHAPE = (1, 28, 28)
#: family -> small build options, z_dim, and the data its methods train on (binary images / grey levels in [0, 1])
FAMILY = {
    "nets": dict(options=dict(hidden=(16,), noise_dim=4, adversary_hidden=(16,), n_flows=2, n_basis=2,
                              decoder_noise_dim=2), z_dim=2,
                 data=lambda g: torch.bernoulli(torch.rand(32, *X_SHAPE, generator=g), generator=g)),
    "dcgan": dict(options=dict(width=4, noise_dim=2), z_dim=4, data=lambda g: torch.rand(32, *X_SHAPE, generator=g)),
}


def _build(name: str) -> Method:
    fam = FAMILY[registry.entry(name).family]
    return registry.build(name, x_shape=X_SHAPE, z_dim=fam["z_dim"], **fam["options"])


def _data(name: str) -> torch.Tensor:
    return FAMILY[registry.entry(name).family]["data"](torch.Generator().manual_seed(0))


def test_every_family_has_test_data_and_the_names_are_those_of_the_families():
    assert set(registry.families()) <= set(FAMILY), "add the new family's data and sizes to FAMILY"
    by_family = [n for f in registry.families() for n in registry.names(f)]
    assert sorted(by_family) == sorted(registry.names()) and len(set(by_family)) == len(by_family)
    for name in ("vae", "flow_vae", "avb", "avb_ac", "asvae", "asvae_r", "asvae_g", "bavae", "bavae_h"):
        assert registry.entry(name).family == "nets"
    assert registry.names("dcgan") == ("dcgan_vae", "dcgan", "vaegan", "bigan", "avae")


@pytest.mark.parametrize("name", registry.names())
def test_method_trains_samples_reconstructs_and_round_trips_a_checkpoint(name, tmp_path):
    torch.manual_seed(0)
    m = _build(name)
    assert isinstance(m, Method)
    assert set(m.critic_players) <= set(m.players) and all(m.player_parameters(p) for p in m.players)
    x = _data(name)
    before = {k: v.detach().clone() for k, v in m.named_parameters()}
    hist = fit(m, BatchSampler(x, 8, dynamic_binarization=False), steps=3, lr={p: 1e-3 for p in m.players},
               run_dir=tmp_path, log_every=1, progress=False)
    assert len(hist) == 3 and all(torch.isfinite(torch.tensor(v)) for row in hist for v in row.values())
    names_of = {id(p): k for k, p in m.named_parameters()}
    for player in m.players:  # every player's step moved some of its parameters
        moved = [names_of[id(p)] for p in m.player_parameters(player)
                 if not torch.equal(before[names_of[id(p)]], p.detach())]
        assert moved, (name, player)
    assert all(torch.isfinite(p).all() for p in m.parameters())

    # sample(n): n images in [0, 1]
    s = m.sample(5)
    assert s.shape == (5, *X_SHAPE) and torch.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    # encode / reconstruct: exactly the methods with an encoder can
    xb = x[:4]
    if "encoder" in dict(m.named_children()):
        z = m.encode(xb)
        assert z.shape == (4, m.z_dim) and torch.isfinite(z).all()
        r = m.reconstruct(xb)
        assert r.shape == xb.shape and torch.isfinite(r).all() and ((r >= 0) & (r <= 1)).all()
    else:
        for f in (m.encode, m.reconstruct):
            with pytest.raises(NotImplementedError, match="no encoder"):
                f(xb)

    # the checkpoint fit wrote at its last iteration loads into a fresh model of the same name: every tensor equal
    torch.manual_seed(1)
    fresh = _build(name)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), m.state_dict().values()))
    assert load_checkpoint(tmp_path / "ckpt.pt", fresh, restore_rng=False) == 3
    mine, theirs = m.state_dict(), fresh.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    fresh.eval()
    torch.manual_seed(2)
    a = m.sample(3)
    torch.manual_seed(2)
    assert torch.equal(a, fresh.sample(3))  # and they generate the same images from the same noise


def test_unknown_name_is_a_value_error_naming_every_known_one():
    with pytest.raises(ValueError, match="unknown method 'dcgan-vae'") as err:
        registry.build("dcgan-vae", x_shape=X_SHAPE, z_dim=2)
    assert all(repr(n) in str(err.value) for n in registry.names())
    with pytest.raises(ValueError, match="unknown family 'mlp'.*'nets'.*'dcgan'"):
        registry.names("mlp")


def test_an_option_the_family_does_not_take_is_a_type_error():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['hiden'\].*'hidden'"):
        registry.build("vae", x_shape=(4,), z_dim=2, hiden=(8,))
    with pytest.raises(TypeError, match="gamma"):
        registry.build("dcgan", x_shape=X_SHAPE, z_dim=2, width=4, gamma=1.0)


def test_register_rejects_a_duplicate_name_and_a_new_name_is_listed_and_built(monkeypatch):
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    with pytest.raises(ValueError, match="'vae' is already registered.*build_vae"):
        registry.register("vae", family="toy", summary="another VAE")(lambda **kw: None)
    with pytest.raises(ValueError, match="non-empty string summary"):
        registry.register("toy", family="toy", summary="")

    @registry.register("toy_vae", family="toy", summary="the nets VAE under another name")
    def build_toy(*, x_shape, z_dim, **options):
        return registry.build("vae", x_shape=x_shape, z_dim=z_dim, **options)

    assert registry.names()[-1] == "toy_vae" and registry.names("toy") == ("toy_vae",)
    assert registry.entry("toy_vae").builder is build_toy
    torch.manual_seed(0)
    a = registry.build("toy_vae", x_shape=(4,), z_dim=2, hidden=(8,))
    torch.manual_seed(0)
    b = registry.build("vae", x_shape=(4,), z_dim=2, hidden=(8,))
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


def test_critic_players_must_be_declared_and_be_players():
    with pytest.raises(TypeError, match="declares players.*but not critic_players"):
        type("NoCritics", (Method,), {"players": {"g": ("net",)}})
    with pytest.raises(TypeError, match=r"names \['critic'\], which are not among its players"):
        type("WrongCritic", (Method,), {"players": {"g": ("net",)}, "critic_players": ("critic",)})
    with pytest.raises(TypeError, match="tuple of player names"):
        type("ListCritic", (Method,), {"players": {"g": ("net",)}, "critic_players": ["g"]})
    ok = type("Ok", (Method,), {"players": {"g": ("net",), "d": ("critic",)}, "critic_players": ("d",)})
    assert ok.critic_players == ("d",) and ok.players == {"g": ("net",), "d": ("critic",)}

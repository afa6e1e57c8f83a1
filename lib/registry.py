"""The one registry of methods: every trainable method has a unique name, a family and a builder.

A method module registers its own names with :func:`register` on a builder function
``builder(*, x_shape, z_dim, **options) -> Method`` that constructs the method's networks; :func:`build` calls it.

>>> from lib import registry
>>> registry.build("avb", x_shape=(1, 28, 28), z_dim=8, hidden=(64,))       # doctest: +SKIP
>>> registry.names("dcgan")
('dcgan_vae', 'dcgan', 'vaegan', 'bigan', 'avae')

Families say which networks a builder makes, hence which options it takes and which data it expects:

* ``"nets"`` (:mod:`lib.nets`, :mod:`lib.flows`): MLP or convolutional encoders and decoders, binarised images by
  default; every builder of the family accepts the options of :data:`lib.nets.NETS_OPTIONS` and uses those its
  networks have (:func:`lib.nets.nets_options`);
* ``"dcgan"`` (:mod:`lib.gan_nets`): DCGAN networks of one ``width`` on grey-level images in [0, 1].

The method modules are imported on the first call of :func:`build` / :func:`names` (:data:`METHOD_MODULES`), so
importing this module alone creates no import cycle with the modules that register into it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

#: the modules of :mod:`lib` that register methods, in the order :func:`names` lists their methods
METHOD_MODULES = ("vae", "avb", "asvae", "bavae", "gan_baselines", "avae")


@dataclass(frozen=True)
class Entry:
    """One registered method: ``name`` (unique across families), ``family``, a one-line ``summary`` and its
    ``builder(*, x_shape, z_dim, **options) -> Method``."""

    name: str
    family: str
    summary: str
    builder: Callable


_ENTRIES: dict[str, Entry] = {}
_loaded = False


def register(name: str, *, family: str, summary: str) -> Callable[[Callable], Callable]:
    """Decorator registering ``builder(*, x_shape, z_dim, **options) -> Method`` under ``name``; returns the builder
    unchanged. raises ValueError for an empty name, family or summary, or a name already registered (names are unique
    across families)."""
    for key, value in (("name", name), ("family", family), ("summary", summary)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"register needs a non-empty string {key}, got {value!r}")

    def decorate(builder: Callable) -> Callable:
        if name in _ENTRIES:
            old = _ENTRIES[name].builder
            raise ValueError(f"method {name!r} is already registered (family {_ENTRIES[name].family!r}, builder "
                             f"{old.__module__}.{old.__qualname__}); method names are unique across families")
        _ENTRIES[name] = Entry(name, family, summary, builder)
        return builder

    return decorate


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in METHOD_MODULES:
            importlib.import_module(f".{module}", __package__)
        _loaded = True


def _order(entry: Entry) -> tuple[int, int]:
    module = entry.builder.__module__.rpartition(".")[2]
    rank = METHOD_MODULES.index(module) if module in METHOD_MODULES else len(METHOD_MODULES)
    return rank, list(_ENTRIES).index(entry.name)


def names(family: str | None = None) -> tuple[str, ...]:
    """The registered method names (of one ``family``, if given), in the order of :data:`METHOD_MODULES` and, within
    a module, of registration. raises ValueError for an unknown family (naming the known ones)."""
    _load()
    if family is not None and family not in families():
        raise ValueError(f"unknown family {family!r}: use one of {families()}")
    return tuple(e.name for e in sorted(_ENTRIES.values(), key=_order) if family is None or e.family == family)


def families() -> tuple[str, ...]:
    """The families of the registered methods, in the order of their first method."""
    _load()
    return tuple(dict.fromkeys(e.family for e in sorted(_ENTRIES.values(), key=_order)))


def entry(name: str) -> Entry:
    """The registry entry of ``name``. raises ValueError for an unknown name, listing the known ones."""
    _load()
    if name not in _ENTRIES:
        raise ValueError(f"unknown method {name!r}: use one of {names()}")
    return _ENTRIES[name]


def build(name: str, *, x_shape, z_dim: int, **options):
    """The method ``name`` with its networks for data of shape ``x_shape`` (e.g. (1, 28, 28)) and codes of size
    ``z_dim``; options: the builder's (see its family above and its docstring, ``entry(name).builder.__doc__``).
    raises ValueError for an unknown name (listing the known ones), TypeError for an option the builder does not
    take, and what the builder and the method's constructor raise."""
    return entry(name).builder(x_shape=x_shape, z_dim=z_dim, **options)

"""The common shape of every method: a set of networks trained as a game between *players*.

A method declares which submodules each player updates (``players``), which of its players are critics
(``critic_players``: discriminators / adversaries, whose learning rates :func:`lib.train.fit` lowers when it rolls back
a diverged run) and how many steps each player takes per iteration (``schedule``); ``loss(player, x)`` returns a dict
of named terms whose ``"loss"`` entry that player *minimises*. :func:`lib.train.fit` does the rest, so a new paper's
objective is one small module (registered in :mod:`lib.registry`).

Every method also has one surface for using a trained model: ``prior()``, ``sample(n)`` (images from the model),
``encode(x)`` (a code z ~ q(z|x)) and ``reconstruct(x)``; a method without an encoder raises NotImplementedError from
the last two. Methods with an ELBO give ``elbo_terms(x)`` and say how its KL term is computed
(``elbo_implementation``), which :func:`lib.evaluate.evaluate_elbo` reports.
"""
from __future__ import annotations

import torch
import torch.distributions as D
import torch.nn as nn

from .nets import standard_normal_prior


class Method(nn.Module):
    #: player name -> names of the submodules whose parameters that player updates
    players: dict[str, tuple[str, ...]] = {}
    #: the players that play a critic's side of a game (discriminators, adversaries); every subclass that declares
    #: ``players`` declares these too (an empty tuple when there are none), checked against ``players``
    critic_players: tuple[str, ...]
    #: methods with an ELBO give ``elbo_terms(x)`` (a dict of (B,) tensors ``elbo = rec - kl``, ``rec``, ``kl``, nats)
    #: and say here how it computes the KL term (e.g. "ELBO, analytic KL"); None for methods without an ELBO
    elbo_implementation: str | None = None

    def __init_subclass__(cls, **kwargs):
        """raises TypeError when a class declares ``players`` but no ``critic_players`` (here or in a base class), or
        when a critic is not one of its players."""
        super().__init_subclass__(**kwargs)
        if "players" not in vars(cls) and "critic_players" not in vars(cls):
            return
        critics = getattr(cls, "critic_players", None)
        if critics is None:
            raise TypeError(f"{cls.__name__} declares players {list(cls.players)} but not critic_players: add "
                            "critic_players = (...) naming its discriminators / adversaries, or () if it has none")
        if not isinstance(critics, tuple) or not all(isinstance(p, str) for p in critics):
            raise TypeError(f"{cls.__name__}.critic_players must be a tuple of player names, got {critics!r}")
        unknown = [p for p in critics if p not in cls.players]
        if unknown:
            raise TypeError(f"{cls.__name__}.critic_players names {unknown}, which are not among its players "
                            f"{list(cls.players)}")

    @property
    def schedule(self) -> list[tuple[str, int]]:
        """[(player, steps per iteration), ...] in the order :func:`lib.train.fit` steps them within one iteration
        (default: every player once, in the order of ``players``; AVB, AS-VAE and BAVAE step their critics k times
        first). Each step draws a fresh batch."""
        return [(p, 1) for p in self.players]

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """The parameters ``player`` updates. raises KeyError naming the known players."""
        if player not in self.players:
            raise KeyError(f"{type(self).__name__} has no player {player!r}; players: {list(self.players)}")
        return [p for name in self.players[player] for p in getattr(self, name).parameters()]

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        """The terms of ``player``'s objective on a batch x (B, *x_shape): a dict of scalar tensors whose ``"loss"``
        entry (a batch mean, nats per example for likelihood-like terms) the player minimises; the other entries are
        detached diagnostics that :func:`lib.train.fit` logs. Subclasses raise KeyError for an unknown player (naming
        the known ones) and TypeError / ValueError for a batch of the wrong dtype or shape."""
        raise NotImplementedError

    # -- the model surface -------------------------------------------------------------------------------------------
    def prior(self, device=None) -> D.Independent:
        """p(z) = N(0, I_Z) over (B, Z) codes, on ``device`` (default: the parameters')."""
        return standard_normal_prior(self.z_dim, device or next(self.parameters()).device)

    def draw_z(self, n: int, device=None) -> torch.Tensor:
        """n codes from the prior N(0, I): (n, Z)."""
        return self.prior(device).sample((n,))

    def sample(self, n: int) -> torch.Tensor:
        """n images from the model, z ~ p(z): (n, *x_shape) in [0, 1]. raises NotImplementedError unless the method
        gives it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement sample(n)")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """A code z ~ q(z|x) for each image of x (B, *x_shape): (B, Z).
        raises NotImplementedError for a method without an encoder."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder: it cannot encode images (nor reconstruct "
                                  "them)")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images decoded from codes of x (B, *x_shape): (B, *x_shape) in [0, 1].
        raises NotImplementedError for a method without an encoder."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder: it cannot reconstruct images")

    # -- description -------------------------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The method's scalar settings (public str / int / float / bool attributes set by its constructor, e.g. the
        AS-VAE variant, BAVAE's entropy and t_max, AVAE's beta): what tells apart variants of equal shapes."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and k != "training" and isinstance(v, (str, int, float, bool, type(None)))}

    def config(self) -> dict:
        """JSON-able description stored in checkpoints, checked again on load."""
        return {"method": type(self).__name__, "players": {k: list(v) for k, v in self.players.items()},
                "settings": self.settings(), "shapes": {k: list(v.shape) for k, v in self.state_dict().items()}}


class EncoderDecoderMethod(Method):
    """The surface of a method with an ``encoder`` (``sample(x)``: a reparameterised z ~ q(z|x)) and a ``decoder``
    (``image(z)``: the image of a code, e.g. :meth:`lib.nets.BernoulliDecoder.image`): VAE, AVB, AS-VAE, BAVAE.
    :meth:`sample`, :meth:`encode` and :meth:`reconstruct` run without gradients, the networks in their current mode."""

    def sample_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x), differentiable in the encoder's parameters: (B, Z)."""
        return self.encoder.sample(x)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images decoder.image(z), z ~ p(z): (n, *x_shape) in [0, 1]."""
        return self.decoder.image(self.draw_z(n))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x): (B, Z)."""
        return self.sample_posterior(x)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decoder.image(z), z ~ q(z|x): (B, *x_shape) in [0, 1]."""
        return self.decoder.image(self.encode(x))

"""The common shape of every method: a set of networks trained as a game between *players*.

A method declares which submodules each player updates (``players``) and how many steps each
player takes per iteration (``schedule``); ``loss(player, x)`` returns a dict of named terms whose
``"loss"`` entry that player *minimises*. :func:`lib.train.fit` does the rest, so a new paper's
objective is one small module.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Method(nn.Module):
    #: player name -> names of the submodules whose parameters that player updates
    players: dict[str, tuple[str, ...]] = {}

    @property
    def adversary_players(self) -> tuple[str, ...]:
        """The players that play the adversary's side of a game (their names say "adversar"/"discrimin");
        :func:`lib.train.fit` lowers their learning rates when it rolls back a diverged run."""
        return tuple(p for p in self.players if "adversar" in p or "discrimin" in p)

    @property
    def schedule(self) -> list[tuple[str, int]]:
        """[(player, steps per iteration), ...] in the order they are stepped."""
        return [(p, 1) for p in self.players]

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """The parameters ``player`` updates. raises KeyError naming the known players."""
        if player not in self.players:
            raise KeyError(f"{type(self).__name__} has no player {player!r}; players: {list(self.players)}")
        return [p for name in self.players[player] for p in getattr(self, name).parameters()]

    def loss(self, player: str, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def settings(self) -> dict:
        """The method's scalar settings (public str / int / float / bool attributes set by its constructor, e.g. the
        AS-VAE variant, BAVAE's entropy and t_max, AVAE's beta): what tells apart variants of equal shapes."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and k != "training" and isinstance(v, (str, int, float, bool, type(None)))}

    def config(self) -> dict:
        """JSON-able description stored in checkpoints, checked again on load."""
        return {"method": type(self).__name__, "players": {k: list(v) for k, v in self.players.items()},
                "settings": self.settings(), "shapes": {k: list(v.shape) for k, v in self.state_dict().items()}}

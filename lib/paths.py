"""Where the repository's folders are, found from this file (works from any working directory).

Figures are kept per profile, ``figures/<profile>/``: a quick run never overwrites the standard profile's figures.
The profile is the one the running notebook resolved (:func:`lib.notebook.open_notebook` calls
:func:`set_figure_profile`); outside a notebook it is ``"quick"``.
``AVAE_FIGURES_DIR`` and ``AVAE_RUNS_DIR`` override the figure root and run folders (the test suite
points them at a temporary folder so that tests never rewrite committed figures).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
NOTEBOOKS_DIR = ROOT / "notebooks"
REPRO_DIR = ROOT / "paper_reproductions"


DEFAULT_FIGURE_PROFILE = "quick"
_figure_profile = DEFAULT_FIGURE_PROFILE


def set_figure_profile(profile: str) -> None:
    """Make :func:`figures_dir` the folder of ``profile`` (a resolved profile: quick, standard, full) from now on.
    raises ValueError for an empty name or one with a path separator."""
    global _figure_profile
    if not profile or "/" in profile or "\\" in profile or profile in (".", ".."):
        raise ValueError(f"not a profile name: {profile!r}")
    _figure_profile = profile


def figures_root() -> Path:
    """``AVAE_FIGURES_DIR``, else ``ROOT/figures``: the folder that holds one folder of figures per profile."""
    return Path(os.environ.get("AVAE_FIGURES_DIR", ROOT / "figures"))


def figures_dir() -> Path:
    """Folder that figures are saved into, ``<figures root>/<profile>/`` (created if needed); the profile is the
    one last given to :func:`set_figure_profile` (default ``"quick"``)."""
    path = figures_root() / _figure_profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Folder that holds ``<experiment>/<stamp>_s<seed>/`` run folders (git-ignored)."""
    path = Path(os.environ.get("AVAE_RUNS_DIR", ROOT / "runs"))
    path.mkdir(parents=True, exist_ok=True)
    return path

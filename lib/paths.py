"""Where the repository's folders are, found from this file (works from any working directory).

``AVAE_FIGURES_DIR`` and ``AVAE_RUNS_DIR`` override the figure and run folders (the test suite
points them at a temporary folder so that tests never rewrite committed figures).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
NOTEBOOKS_DIR = ROOT / "notebooks"
REPRO_DIR = ROOT / "paper_reproductions"


def figures_dir() -> Path:
    """Folder that figures are saved into (created if needed)."""
    path = Path(os.environ.get("AVAE_FIGURES_DIR", ROOT / "figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Folder that holds ``<experiment>/<stamp>_s<seed>/`` run folders (git-ignored)."""
    path = Path(os.environ.get("AVAE_RUNS_DIR", ROOT / "runs"))
    path.mkdir(parents=True, exist_ok=True)
    return path

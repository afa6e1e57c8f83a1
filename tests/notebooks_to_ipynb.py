"""Convert every jupytext notebook ``notebooks/*.py`` to ``<out>/<name>.ipynb`` (for nbval).

usage: python tests/notebooks_to_ipynb.py OUT_DIR
"""
import sys
from pathlib import Path

import jupytext

root = Path(__file__).resolve().parents[1]
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for old in out.glob("*.ipynb"):
    old.unlink()
for py in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
    jupytext.write(jupytext.read(py), out / f"{py.stem}.ipynb")
    print(f"{py.relative_to(root)} -> {out / (py.stem + '.ipynb')}")

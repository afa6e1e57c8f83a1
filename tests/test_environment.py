"""pyproject.toml is the one list of dependencies; environment.yml must mirror it (no drift)."""
import re
import tomllib

import yaml

from lib.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = yaml.safe_load((ROOT / "environment.yml").read_text())


def _names(reqs):
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_environment_yml_installs_the_project_with_existing_extras():
    deps = ENV["dependencies"]
    pip = [d for d in deps if isinstance(d, dict)][0]["pip"]
    assert pip == ["-e .[dev]"], "environment.yml must install the project itself, with pip, and nothing else"
    conda = [d for d in deps if isinstance(d, str)]
    assert {re.split("[=<>]", d)[0] for d in conda} == {"python", "pip"}, "conda packages would drift from pyproject"
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "dev" in extras
    py = [d for d in conda if d.startswith("python")][0].split("=")[1]
    low = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, py.split("."))) >= tuple(map(int, low.split(".")))


def test_the_user_named_packages_are_dependencies():
    project = PYPROJECT["project"]
    everything = _names(project["dependencies"])
    for reqs in project["optional-dependencies"].values():
        everything |= _names(reqs)
    named = {"jupyterlab", "papermill", "torch", "torchvision", "matplotlib", "seaborn", "nbval", "jupytext"}
    assert named <= everything, named - everything

"""lib.notebook: parameters cells are literals, profile settings are complete overrides, and a misspelt parameter stops
a notebook (checked with real papermill runs of a tiny notebook)."""
import nbformat
import pytest
import torch
import yaml

from lib import notebook
from lib.notebook import ParameterError, check_parameters, notebook_defaults, open_notebook, parameters_from_source
from lib.paths import NOTEBOOKS_DIR, REPRO_DIR

PARAMETERS = 'PROFILE = "quick"\nSEED = 0\nDEVICE = "cpu"\nRUN_DIR = ""\nX = 1\nSETTINGS = {"a": 1, "b": (2, 3)}\n'


def test_parameters_cell_is_read_as_literals():
    assert parameters_from_source(PARAMETERS + "# a comment\n") == {
        "PROFILE": "quick", "SEED": 0, "DEVICE": "cpu", "RUN_DIR": "", "X": 1, "SETTINGS": {"a": 1, "b": (2, 3)}}
    with pytest.raises(ParameterError, match="not a literal"):
        parameters_from_source("BETA = 1 / 16\n")
    with pytest.raises(ParameterError, match="only NAME = literal"):
        parameters_from_source("import os\n")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_every_notebook_has_literal_parameters_with_quick_settings(path):
    """The quick profile's settings are the parameters cell's own values: a literal SETTINGS mapping in every notebook,
    and every full parameter file gives the same keys (complete, checked as the runner checks)."""
    defaults = notebook_defaults(path)
    assert {"PROFILE", "SEED", "DEVICE", "RUN_DIR"} <= set(defaults) and isinstance(defaults["SETTINGS"], dict)
    for params in REPRO_DIR.glob("params/*.full.yaml"):
        spec = yaml.safe_load(params.read_text())
        if spec["notebook"] == path.stem:
            given = spec["parameters"]
            check_parameters(defaults, given, str(params))
            assert set(given["SETTINGS"]) == set(defaults["SETTINGS"]), params


def test_check_parameters_names_unknown_and_incomplete():
    defaults = parameters_from_source(PARAMETERS)
    check_parameters(defaults, {"X": 2, "SETTINGS": {"a": 5, "b": [1]}}, "here")
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['PROFLE'\].*'PROFILE'"):
        check_parameters(defaults, {"PROFLE": "full"}, "here")
    with pytest.raises(ParameterError, match=r"missing \['b'\], unknown \['c'\]"):
        check_parameters(defaults, {"SETTINGS": {"a": 5, "c": 1}}, "here")


def test_open_notebook_outside_papermill_reads_the_profiles_file(tmp_path, monkeypatch):
    """In JupyterLab or nbval (no injected cell): quick keeps the parameters cell; another profile, or another
    experiment of the same notebook, takes its parameter file's values; seed and CPU threads as asked."""
    nb_dir, params = tmp_path / "notebooks", tmp_path / "params"
    nb_dir.mkdir(), params.mkdir()
    (nb_dir / "99_tiny.py").write_text('# %% tags=["parameters"]\n' + PARAMETERS + "\n# %%\nx = 1\n")
    (params / "99_tiny.full.yaml").write_text("parameters:\n  X: 7\n  SETTINGS: {a: 10, b: [20, 30]}\n")
    (params / "99_tiny_other.quick.yaml").write_text("notebook: 99_tiny\nparameters:\n  X: 8\n")
    monkeypatch.setattr(notebook, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(notebook, "PARAMS_DIR", params)
    threads = torch.get_num_threads()
    try:
        ns = parameters_from_source(PARAMETERS)
        nb = open_notebook(ns, "99_tiny", seed=True)
        assert (nb.profile, ns["X"], ns["SETTINGS"]) == ("quick", 1, {"a": 1, "b": (2, 3)})
        first = torch.rand(3)
        open_notebook(ns, "99_tiny", seed=True)
        assert torch.equal(first, torch.rand(3))  # seed_everything(SEED)
        ns = {**parameters_from_source(PARAMETERS), "PROFILE": "full"}
        nb = open_notebook(ns, "99_tiny", cpu_threads=1)
        assert (nb.profile, ns["X"], ns["SETTINGS"]) == ("full", 7, {"a": 10, "b": [20, 30]})
        assert torch.get_num_threads() == 1
        ns = parameters_from_source(PARAMETERS)
        assert open_notebook(ns, "99_tiny_other", notebook="99_tiny").experiment == "99_tiny_other" and ns["X"] == 8
        (params / "99_tiny.full.yaml").write_text("parameters:\n  SETTINGS: {a: 10}\n")
        with pytest.raises(ParameterError, match="missing"):
            open_notebook({**parameters_from_source(PARAMETERS), "PROFILE": "full"}, "99_tiny")
        (params / "99_tiny.full.yaml").unlink()
        with pytest.raises(FileNotFoundError, match="99_tiny.full.yaml"):
            open_notebook({**parameters_from_source(PARAMETERS), "PROFILE": "full"}, "99_tiny")
    finally:
        torch.set_num_threads(threads)


def _tiny_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('from lib.notebook import open_notebook\n'
                                          'nb = open_notebook(globals(), "99_tiny")\n'
                                          'print("RESULT", X, SETTINGS, nb.profile)')]
    nbformat.write(nb, str(path))


def test_papermill_run_stops_on_an_unknown_parameter(tmp_path):
    """A real papermill run: a known parameter is used; a misspelt one (``-p PROFLE quick``) or an incomplete SETTINGS
    stops the notebook with an error naming the known parameters, instead of running on the defaults."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src, out = tmp_path / "tiny.ipynb", tmp_path / "out.ipynb"
    _tiny_notebook(src)
    kw = dict(kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    papermill.execute_notebook(str(src), str(out), parameters={"X": 5, "SETTINGS": {"a": 2, "b": [4]}}, **kw)
    text = "".join(o.get("text", "") for o in nbformat.read(str(out), 4).cells[-1].outputs)
    assert "RESULT 5 {'a': 2, 'b': [4]} quick" in text
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(src), str(out), parameters={"PROFLE": "quick"}, **kw)
    assert err.value.ename == "ParameterError" and "unknown parameter(s) ['PROFLE']" in err.value.evalue
    assert "'PROFILE'" in err.value.evalue and "'SETTINGS'" in err.value.evalue
    with pytest.raises(PapermillExecutionError, match=r"missing \['b'\]"):
        papermill.execute_notebook(str(src), str(out), parameters={"SETTINGS": {"a": 2}}, **kw)

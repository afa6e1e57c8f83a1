"""JupyterLab in a real browser: every notebook renders its math, runs its first cells, and reading it changes no file.

For each ``notebooks/*.py`` the test opens the notebook in JupyterLab (served, as ``make lab`` does, from the repository
root, here a throwaway copy under ``build/lab-browser/``) in headless Chromium through Playwright, with the ``Notebook``
factory (right-click -> Open With -> Notebook), and checks:

* math: every markdown cell is scrolled into view (Lab renders markdown only then) and every math span that Lab's
  markdown renderer extracts (``removeMath`` of ``@jupyterlab/rendermime``, ported below) becomes one MathJax element
  (``mjx-container``) with no MathJax error (``mjx-merror``, e.g. "'_' allowed only in math mode");
* the parameters cell and the first code cell run without an error output;
* saving (what autosave does, ``context.save()``) writes the paired ``.ipynb`` (pyproject's ``[tool.jupytext]`` is
  loaded) and leaves the ``.py`` byte-identical to the committed one (reading never changes a tracked file).

The browser comes from ``make browser`` (``tests/setup_browser.sh``: ``build/chromium/headless-shell``) or from
``$AVAE_CHROMIUM``; without one the test fails and says so.
"""
import asyncio
import difflib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "lab-browser"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.py"))
LAUNCHER = ROOT / "build" / "chromium" / "headless-shell"
# As root on a machine whose network is closed: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOW_TO_FIX = ("run `make browser` (tests/setup_browser.sh: Debian's chromium-headless-shell unpacked under "
              "build/chromium, or `playwright install chromium-headless-shell`), or set AVAE_CHROMIUM to a Chromium "
              "headless shell")


# --- math spans as JupyterLab's markdown renderer extracts them --------------------------------------------------------
# A port of removeMath (@jupyterlab/rendermime, src/latex.ts, JupyterLab 4): the number of spans it returns is the
# number of MathJax elements a rendered cell must show.
_MATHSPLIT = re.compile(r"(\$\$?|\\(?:begin|end)\{[a-z]*\*?\}|\\[{}$]|[{}]|(?:\n\s*)+|@@\d+@@|\\\\[()[\]])", re.I)


def math_spans(text: str) -> list[str]:
    """The math spans of a markdown source, as JupyterLab extracts them before rendering (code spans excluded)."""
    if "`" in text or "~~~" in text:
        text = text.replace("~", "~T")
        text = re.sub(r"^(?P<fence>`{3,}|(~T){3,})[^`\n]*\n([\s\S]*?)^(?P=fence)`*$",
                      lambda m: m.group(0).replace("$", "~D"), text, flags=re.M)
        text = re.sub(r"(^|[^\\])(`+)([^\n]*?[^`\n])\2(?!`)", lambda m: m.group(0).replace("$", "~D"), text,
                      flags=re.M)
    blocks = _MATHSPLIT.split(text.replace("\r\n", "\n").replace("\r", "\n"))
    math, start, end, last, braces = [], None, None, None, 0

    def process(first, stop):
        math.append("".join(blocks[first:stop + 1]))
        for k in range(first, stop + 1):
            blocks[k] = ""

    i = 1
    while i < len(blocks):
        block = blocks[i]
        if block.startswith("@"):
            math.append(block)
        elif start is not None:
            if block == end:
                if braces:
                    last = i
                else:
                    process(start, i)
                    start = end = last = None
            elif re.search(r"\n.*\n", block):
                if last is not None:
                    i = last
                    process(start, i)
                start = end = last = None
                braces = 0
            elif block == "{":
                braces += 1
            elif block == "}" and braces:
                braces -= 1
        elif block in ("$", "$$"):
            start, end, braces = i, block, 0
        elif block in ("\\\\(", "\\\\["):
            start, end, braces = i, "\\\\)" if block.endswith("(") else "\\\\]", 0
        elif block[1:6] == "begin":
            start, end, braces = i, "\\end" + block[6:], 0
        i += 2
    if start is not None and last is not None:
        process(start, last)
    return math


def test_math_spans_port_on_known_cases():
    assert math_spans(r"a $x_1$ and $$\frac12$$ b") == ["$x_1$", r"$$\frac12$$"]
    assert math_spans("`$HOME` and `$PATH` are not math, $y$ is") == ["$y$"]
    assert math_spans(r"\begin{align}a&=b\end{align} then $c$") == [r"\begin{align}a&=b\end{align}", "$c$"]
    assert math_spans("$a\n\nb$ spans a paragraph break: not math") == []
    assert math_spans(r"braces $\text{a $b$ c}$ balance") == [r"$\text{a $b$ c}$"]
    assert math_spans(r"an escaped \$ is no delimiter") == []


# --- the server, the browser ------------------------------------------------------------------------------------------
def _copy_repository(dest: Path) -> list[str]:
    """Copy the working tree's files that git would take (tracked, and untracked but not ignored: no .ipynb, runs or
    build) to DEST; returns their paths, relative to the repository root."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but what .gitignore names
        ignored = {".git", ".venv", "build", "runs", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis"}
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                  if not ignored & set(p.relative_to(ROOT).parts) and p.suffix != ".ipynb"]
    names = [name for name in listed if name and (ROOT / name).is_file()]
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on a copy of the repository (its root = the copy's root, as `make lab`), no token; yields (url, copy,
    the copied files)."""
    shutil.rmtree(WORK, ignore_errors=True)
    repo = WORK / "repo"
    files = _copy_repository(repo)
    jupyter = WORK / "jupyter"
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"), "IPYTHONDIR": str(jupyter / "ipython"),
           "PYTHONPATH": str(repo), "CI": "1", "AVAE_NUM_THREADS": "1",
           "AVAE_FIGURES_DIR": str(WORK / "figures"), "AVAE_RUNS_DIR": str(WORK / "runs")}
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(WORK / "server.log", "wb")
    server = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(WORK / 'server.log').read_text()[-5000:]}")
                time.sleep(0.3)
        yield url, repo, files
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


# --- one notebook in one page -----------------------------------------------------------------------------------------
_OPEN_LAB = """async () => { await window.jupyterapp.restored; }"""

_OPEN = """async (path) => {
  const widget = await window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  window.__avae = widget;
  await widget.context.ready;
  await widget.sessionContext.ready;
  return {notebook: widget.hasClass('jp-NotebookPanel'), cells: widget.content.model.cells.length};
}"""

# Scroll each markdown cell into view (Lab renders markdown only there) and wait until it is rendered, then until
# MathJax (typesetting asynchronously, loaded on first use) has made as many elements as the source has math spans.
# Returns, per markdown cell, the MathJax elements and the MathJax errors, and the cells that never rendered.
_RENDER_MARKDOWN = """async (expected) => {
  const nb = window.__avae.content;
  const waitFor = async (ok, ms) => {
    for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise(r => setTimeout(r, 25))) if (ok()) return true;
    return ok();
  };
  const rendered = i => nb.widgets[i].node.querySelector('.jp-RenderedMarkdown');
  const unrendered = [];
  for (const i of Object.keys(expected).map(Number)) {
    await nb.scrollToItem(i, 'start');
    nb.widgets[i].node.scrollIntoView();
    if (!await waitFor(() => rendered(i)?.childElementCount > 0, 10000)) unrendered.push(i);
  }
  const count = i => rendered(i)?.querySelectorAll('mjx-container').length ?? 0;
  await waitFor(() => Object.entries(expected).every(([i, n]) => count(Number(i)) >= n), 60000);
  const cells = {};
  for (const i of Object.keys(expected).map(Number))
    cells[i] = {math: count(i), errors: [...(rendered(i)?.querySelectorAll('mjx-merror') ?? [])].map(
      e => e.getAttribute('data-mjx-error') || e.textContent)};
  return {unrendered, cells};
}"""

_RUN = """async (index) => {
  const nb = window.__avae.content;
  nb.activeCellIndex = index;
  nb.deselectAll();
  await window.jupyterapp.commands.execute('notebook:run-cell');
  const model = nb.model.cells.get(index);
  return {count: model.executionCount, outputs: model.outputs.toJSON()};
}"""

# What autosave does (context.save()), then close; the kernel is shut down without waiting for it.
_SAVE = """async () => { await window.__avae.context.save(); return window.__avae.context.model.dirty; }"""
_CLOSE = """() => {
  const widget = window.__avae;
  window.__avae = undefined;
  if (!widget || widget.isDisposed) return;
  widget.sessionContext.shutdown().catch(() => {});
  widget.dispose();
}"""


async def _check(page, name: str, repo: Path) -> tuple[list[str], str]:
    """Open notebooks/NAME in the page's JupyterLab, check it; returns (problems, a one-line summary)."""
    t0 = time.monotonic()
    committed = (ROOT / "notebooks" / name).read_bytes()
    py = repo / "notebooks" / name
    if py.read_bytes() != committed:
        return [f"the copy of {name} differs from the repository's"], ""
    before = py.stat().st_mtime_ns
    cells = jupytext.read(py).cells
    opened = await page.evaluate(_OPEN, f"notebooks/{name}")
    if opened != {"notebook": True, "cells": len(cells)}:
        return [f"opened with the Notebook factory: {opened}, expected a notebook of {len(cells)} cells"], ""

    problems = []
    expected = {i: len(math_spans(c.source)) for i, c in enumerate(cells) if c.cell_type == "markdown"}
    shown = await page.evaluate(_RENDER_MARKDOWN, {str(i): n for i, n in expected.items()})
    seen = {int(i): v for i, v in shown["cells"].items()}
    if shown["unrendered"]:
        problems.append(f"markdown cells {shown['unrendered']} did not render when scrolled into view")
    errors = {i: v["errors"] for i, v in seen.items() if v["errors"]}
    if errors:
        problems.append(f"MathJax errors, by markdown cell: {errors}")
    wrong = {i: (seen[i]["math"], n) for i, n in expected.items() if seen[i]["math"] != n}
    if wrong:
        problems.append(f"math that did not render, by markdown cell: (MathJax elements, math spans in the source) "
                        f"{wrong}")
    n_math = sum(v["math"] for v in seen.values())

    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    if [i for i in code if "parameters" in cells[i].metadata.get("tags", [])] != code[:1]:
        problems.append("the first code cell is not the (only) cell tagged parameters")
    for i in code[:2]:
        ran = await page.evaluate(_RUN, i)
        failed = [o for o in ran["outputs"] if o["output_type"] == "error"]
        if ran["count"] is None or failed:
            problems.append(f"code cell {i} " + (f"failed: {failed[0]['ename']}: {failed[0]['evalue']}" if failed
                                                   else "did not run"))
            break

    if await page.evaluate(_SAVE):
        problems.append("still marked modified after saving")
    if not (repo / "notebooks" / f"{py.stem}.ipynb").is_file():
        problems.append("saving wrote no paired .ipynb: pyproject's [tool.jupytext] was not read")
    if py.stat().st_mtime_ns == before:
        problems.append("saving did not write the .py")
    after = py.read_bytes()
    if after != committed:
        diff = "\n".join(difflib.unified_diff(committed.decode().splitlines(), after.decode().splitlines(),
                                              "committed", "after opening and saving in JupyterLab", lineterm="", n=1))
        problems.append(f"opening and saving in JupyterLab changed the .py:\n{diff}")
    return problems, f"{name}: {n_math} math elements, {time.monotonic() - t0:.1f} s"


async def _check_all(url: str, repo: Path, executable: str, names: list[str], pages: int) -> dict:
    """Check NAMES in one headless Chromium, PAGES JupyterLab pages at a time; returns {name: (problems, summary)}."""
    from playwright.async_api import async_playwright

    results, queue = {}, list(names)

    async def worker(browser):
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        page.set_default_timeout(120_000)
        await page.goto(f"{url}/lab?reset")  # ?reset: no tabs from an earlier workspace
        await page.wait_for_function("window.jupyterapp !== undefined")
        await page.evaluate(_OPEN_LAB)
        while queue:
            name = queue.pop(0)
            try:
                results[name] = await asyncio.wait_for(_check(page, name, repo), 300)
            except Exception as e:  # noqa: BLE001 (a timeout or a script error: report it as this notebook's)
                results[name] = ([f"{type(e).__name__}: {e}"], "")
            finally:
                await page.evaluate(_CLOSE)
        await context.close()

    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, timeout=60_000)
        except Exception as e:  # noqa: BLE001 (Playwright's launch errors share no narrower base class)
            return {name: ([f"headless Chromium {executable} did not start: {e}\n{HOW_TO_FIX}"], "") for name in names}
        await asyncio.gather(*(worker(browser) for _ in range(min(pages, len(names)))))
        await browser.close()
    return results


@pytest.fixture(scope="module")
def lab_results(request):
    """Every selected notebook checked once, PAGES at a time (AVAE_LAB_PAGES, default 2): {name: (problems, summary)}."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -e '.[test]'` (make install)")
    executable = os.environ.get("AVAE_CHROMIUM") or str(LAUNCHER)
    if not os.access(executable, os.X_OK):
        pytest.fail(f"no headless Chromium at {executable}: {HOW_TO_FIX}")
    names = [item.callspec.params["name"] for item in request.session.items
             if getattr(item, "originalname", "") == "test_notebook_in_jupyterlab"]
    t0 = time.monotonic()
    url, repo, _ = request.getfixturevalue("lab")
    results = asyncio.run(_check_all(url, repo, executable, names, int(os.environ.get("AVAE_LAB_PAGES", "2"))))
    print(f"\n{len(names)} notebooks checked in JupyterLab in {time.monotonic() - t0:.0f} s")
    return results


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_in_jupyterlab(name, lab_results):
    problems, summary = lab_results[name]
    print(summary)
    assert not problems, f"{name} in JupyterLab:\n" + "\n".join(problems)


def test_reading_in_jupyterlab_changed_no_file_of_the_repository(lab, lab_results):
    """After every notebook was opened, run in part and saved: each copied file is still the repository's."""
    _, repo, files = lab
    assert "pyproject.toml" in files and all(f"notebooks/{name}" in files for name in lab_results)
    changed = [name for name in files if (repo / name).read_bytes() != (ROOT / name).read_bytes()]
    assert not changed, f"JupyterLab changed {changed}"


# --- without a browser: what jupytext and Lab would write back --------------------------------------------------------
def test_notebooks_round_trip_through_jupytext_with_the_repository_config():
    """jupytext, configured by pyproject.toml (as in `make lab`), writes every notebook back byte for byte."""
    from jupytext.config import load_jupytext_configuration_file

    config = load_jupytext_configuration_file(str(ROOT / "pyproject.toml"))
    assert "jupytext_version" in config.notebook_metadata_filter
    for name in NOTEBOOKS:
        text = (ROOT / "notebooks" / name).read_text()
        again = jupytext.writes(jupytext.reads(text, fmt="py:percent", config=config), fmt="py:percent", config=config)
        diff = "\n".join(difflib.unified_diff(text.splitlines(), again.splitlines(), "committed", "written back",
                                              lineterm="", n=1))
        assert again == text, f"{name}: jupytext would rewrite it (a blank line in a markdown cell becomes '#'):\n{diff}"


def test_notebook_kernelspecs_are_what_jupyterlab_writes_back():
    """Lab replaces a notebook's kernelspec by the started kernel's; the headers must already hold it."""
    from jupyter_client.kernelspec import KernelSpecManager

    for name in NOTEBOOKS:
        kernelspec = jupytext.read(ROOT / "notebooks" / name).metadata["kernelspec"]
        spec = KernelSpecManager().get_kernel_spec(kernelspec["name"])
        assert kernelspec == {"name": kernelspec["name"], "display_name": spec.display_name,
                              "language": spec.language}, name

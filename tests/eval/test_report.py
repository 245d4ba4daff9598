"""`r1zero report`: one self-contained HTML file, checked as text and in a real headless browser."""

import json
import os
import re
import shutil
import subprocess

import pytest

from r1zero.eval.report import build_report, highlight, main, summary_rows
from r1zero.eval.rundir import load_run

from .fixtures import write_synthetic_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = write_synthetic_run(tmp_path_factory.mktemp("run") / "demo", steps=40, aha_step=20)
    assert main([str(run)]) == 0
    return run, run / "report.html"


def test_report_is_self_contained(report):
    _, path = report
    page = path.read_text(encoding="utf-8")
    assert page.count("<svg") == 4
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<img" not in page and "@import" not in page and "url(http" not in page


def test_report_content(report):
    run, path = report
    page = path.read_text(encoding="utf-8")
    assert "Aha step: <b>20</b>" in page
    assert "<mark>wait</mark>" in page and "<mark>recheck</mark>" in page
    assert "&quot;source&quot;: &quot;list_sum&quot;" in page  # the config, escaped inside <pre>
    n_samples = len((run / "samples.jsonl").read_text().splitlines())
    assert page.count("<tr data-step=") == n_samples
    rows = dict((label, (a, b)) for label, a, b in summary_rows(load_run(run)))
    assert rows["list_sum pass@1"][0] == pytest.approx(0.05)
    assert rows["list_sum pass@1"][1] > 0.7
    assert rows["wall time (s)"][1] == pytest.approx(120.0)


def test_highlight_escapes_model_text(tmp_path):
    assert (
        highlight("<script>alert(1)</script> wait")
        == "&lt;script&gt;alert(1)&lt;/script&gt; <mark>wait</mark>"
    )
    run = write_synthetic_run(tmp_path / "r", steps=3)
    hostile = {
        "step": 3,
        "prompt": "<b>p</b>",
        "completion": "<script>alert(1)</script> wait",
        "correct": False,
        "reason": "<i>x</i>",
        "extracted": "<img src=x>",
        "gold": "9",
        "length": 9,
    }
    with (run / "samples.jsonl").open("a") as f:
        f.write(json.dumps(hostile) + "\n")
    page = build_report(run)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>wait</mark>" in page
    assert "<script>alert" not in page and "<img src=x>" not in page and "<i>x</i>" not in page


def _chromium(args, tmp_path, timeout=120):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=True)


@needs_chromium
def test_browser_renders_figures_and_filters_by_step(report, tmp_path):
    run, path = report
    samples = (run / "samples.jsonl").read_text().splitlines()
    at_step_30 = sum('"step": 30,' in line for line in samples)
    assert at_step_30 > 0
    dom = _chromium(["--dump-dom", f"{path.as_uri()}#step=30"], tmp_path).stdout
    assert 'data-figures-rendered="4"' in dom  # every inline SVG laid out with a non-zero width
    assert f'id="shown-count">{at_step_30}<' in dom
    visible = re.findall(r'<tr data-step="(\d+)"[^>]*>', dom)
    hidden = re.findall(r'<tr data-step="(\d+)"[^>]*hidden[^>]*>', dom)
    assert len(visible) == len(samples)
    assert len(visible) - len(hidden) == at_step_30
    assert all(step != "30" for step in hidden)
    # with no filter every row is shown
    dom_all = _chromium(["--dump-dom", path.as_uri()], tmp_path).stdout
    assert f'id="shown-count">{len(samples)}<' in dom_all and "hidden=" not in dom_all


@needs_chromium
def test_browser_screenshot(report, tmp_path):
    import matplotlib.image

    _, path = report
    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,1600", path.as_uri()], tmp_path)
    image = matplotlib.image.imread(shot)  # [H, W, C] floats in [0, 1]
    assert image.shape[0] == 1600 and image.shape[1] == 1280
    assert image.std() > 0.05  # not a blank page
    keep = os.environ.get("R1ZERO_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)

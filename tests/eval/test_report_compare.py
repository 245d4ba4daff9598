"""`r1zero report A B`: runs compared in one page; search, filters, group view and problem timeline, checked
as text and in headless Chromium (the URL fragment sets the filters, as a reader's link would)."""

import re

import pytest

from r1zero.eval.report import build_report, default_out, main

from .compare_fixtures import write_compare_run
from .test_report import _chromium, needs_chromium


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    a = write_compare_run(root / "grpo", "grpo", "group", seed=0)
    b = write_compare_run(root / "drgrpo", "drgrpo", "none", seed=1)
    assert main([str(a), str(b)]) == 0
    return a, b, a / "compare.html"


def test_default_out_names_one_report_or_a_comparison(tmp_path):
    assert default_out([tmp_path / "a"]) == tmp_path / "a" / "report.html"
    assert default_out([tmp_path / "a", tmp_path / "b"]) == tmp_path / "a" / "compare.html"


def test_compare_page_content(compared):
    a, _, path = compared
    page = path.read_text(encoding="utf-8")
    assert "grpo (cpu-demo) vs drgrpo (cpu-demo)" in page
    # the settings diff holds exactly the keys that differ
    diff = page[page.index('id="config-diff"') : page.index("</table>", page.index('id="config-diff"'))]
    keys = re.findall(r"<tr><td>([a-z_.]+)</td>", diff)
    assert keys == ["algo.advantage", "algo.loss_agg", "run.name", "run.seed"]
    # summary: two columns per run
    assert "<th>0: step 0</th><th>0: final</th><th>1: step 0</th><th>1: final</th>" in page
    # samples of both runs, rows tagged with their run
    n_a = len((a / "samples.jsonl").read_text().splitlines())
    assert page.count('data-run="0"') >= n_a and 'data-run="1"' in page
    # one group block per run and step; the timeline has both problems, p1 flips at step 20 in both runs
    assert page.count('<div class="group"') == 80
    assert page.count('<div class="timeline"') == 2
    assert page.count('<td class="flip">') == 2
    assert (
        '<option value="p1" selected>p1 · 0: grpo (cpu-demo) flips at 20 · 1: drgrpo (cpu-demo) flips at 20</option>'
        in page
    )


def test_single_run_keeps_working_without_new_files(tmp_path):
    from .fixtures import write_synthetic_run

    run = write_synthetic_run(tmp_path / "old", steps=5)
    page = build_report(run)
    assert "No groups recorded" in page and "No held-out completions recorded" in page
    assert 'id="config-diff"' not in page
    assert main([str(run), "--out", str(tmp_path / "new" / "r.html")]) == 0  # the folder is made
    assert "No groups recorded" in (tmp_path / "new" / "r.html").read_text(encoding="utf-8")


def _dom(path, fragment, tmp_path):
    return _chromium(["--dump-dom", f"{path.as_uri()}#{fragment}"], tmp_path).stdout


def _shown(dom):
    return int(re.search(r'id="shown-count">(\d+)<', dom).group(1))


@needs_chromium
def test_browser_search_filters_group_and_timeline(compared, tmp_path):
    a, b, path = compared
    total = sum(len((r / "samples.jsonl").read_text().splitlines()) for r in (a, b))
    everything = _dom(path, "", tmp_path)
    assert _shown(everything) == total
    assert 'data-figures-rendered="4"' in everything
    # text search: only completions containing "recheck"; a verdict-reason filter on top narrows further
    with_word = sum(
        "recheck" in line for r in (a, b) for line in (r / "samples.jsonl").read_text().splitlines()
    )
    searched = _dom(path, "q=recheck&run=1&reason=wrong&group=1:7&problem=p1", tmp_path)
    assert 0 < _shown(searched) < with_word < total
    visible = [
        row for row in re.findall(r"<tr data-step=\"\d+\" data-run[^>]*>", searched) if "hidden" not in row
    ]
    assert all('data-run="1"' in row and 'data-reason="wrong"' in row for row in visible)
    # group view: exactly the chosen group is shown, its G completions with their advantages
    assert 'id="group-shown">1<' in searched
    shown_group = re.search(r'<div class="group" data-key="1:7">(.*?)</div>', searched, re.S)
    assert shown_group and shown_group.group(1).count("+1.500") == 2
    # the timeline: p1 at five evaluated steps, the flip at step 20 marked
    assert 'id="timeline-shown">1<' in searched
    timeline = re.search(r'<div class="timeline" data-problem="p1">(.*?)</div>', searched, re.S).group(1)
    assert re.findall(r'<tr data-step="(\d+)">', timeline) == ["0", "10", "20", "30", "40"]
    assert timeline.count('<td class="flip">') == 2
    # the behaviour filter: the synthetic samples carry no verification phrasing
    assert _shown(_dom(path, "behaviour=verification", tmp_path)) == 0


@needs_chromium
def test_browser_screenshot_of_comparison(compared, tmp_path):
    import os
    import shutil

    import matplotlib.image

    _, _, path = compared
    shot = tmp_path / "compare.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,2400", f"{path.as_uri()}#problem=p1"], tmp_path)
    image = matplotlib.image.imread(shot)  # [H, W, C] floats in [0, 1]
    assert image.shape[:2] == (2400, 1280) and image.std() > 0.05
    keep = os.environ.get("R1ZERO_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)

"""HTML pieces of ``r1zero report``: the sample browser, group view, problem timeline, style and script.

Every piece of model or file text goes through ``html.escape`` (completions are untrusted: a model can
write ``<script>``). The page filters in the browser with a small script; its state lives in the URL
fragment (``#step=40&q=wait&reason=wrong&behaviour=verification&run=0&problem=ID&group=0:12``), so a
link opens the page on one view.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from r1zero.eval.behaviour_types import BEHAVIOUR_TYPES, classify
from r1zero.eval.report_data import flip_step

__all__ = ["PAGE", "SCRIPT", "STYLE", "group_view", "sample_rows", "select_options", "timeline_view"]

Highlighter = Callable[[str], str]


def select_options(values: Sequence[tuple[str, str]], selected: str | None = None) -> str:
    """``<option>`` elements from ``(value, label)`` pairs.

    >>> select_options([("0", "a<b")], "0")
    '<option value="0" selected>a&lt;b</option>'
    """
    return "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>{html.escape(label)}</option>'
        for v, label in values
    )


def _verdict(correct: bool) -> str:
    return f'<td class="{"ok" if correct else "bad"}">{"✓" if correct else "✗"}</td>'


def _types(text: str) -> str:
    return " ".join(classify(text))


def sample_rows(samples: Sequence[tuple[int, dict]], highlight: Highlighter, count_hits) -> str:
    """Rows of the sample browser: ``(run index, samples.jsonl line)`` pairs, filterable attributes in
    ``data-*``."""
    rows = []
    for run_i, s in samples:
        text = str(s.get("completion", ""))
        correct = bool(s.get("correct"))
        hits = s.get("reflection_hits")
        if hits is None:
            hits = count_hits(text)
        types = _types(text)
        rows.append(
            f'<tr data-step="{int(s.get("step", 0))}" data-run="{run_i}" data-correct="{int(correct)}" '
            f'data-reflect="{int(hits > 0)}" data-reason="{html.escape(str(s.get("reason", "")))}" '
            f'data-behaviours="{types}">'
            f"<td>{run_i}</td><td>{int(s.get('step', 0))}</td>{_verdict(correct)}"
            f"<td>{html.escape(str(s.get('reason', '')))}</td>"
            f"<td>{html.escape(str(s.get('extracted', '')))} / {html.escape(str(s.get('gold', '')))}</td>"
            f"<td>{html.escape(str(s.get('length', '')))}</td><td>{hits}</td><td>{types or '–'}</td>"
            f"<td><details><summary>prompt</summary><pre>{html.escape(str(s.get('prompt', '')))}</pre></details>"
            f'<pre class="completion">{highlight(text)}</pre></td></tr>'
        )
    return "\n".join(rows)


def group_view(groups: Sequence[tuple[int, dict]], highlight: Highlighter) -> tuple[str, str]:
    """``(options of the group picker, one hidden <div> per group)`` from ``(run index, groups.jsonl line)``."""
    options, blocks = [], []
    for run_i, g in groups:
        key = f"{run_i}:{int(g.get('step', 0))}"
        options.append((key, f"run {run_i}, step {int(g.get('step', 0))}"))
        rows = []
        for c in g.get("completions", []):
            text = str(c.get("completion", ""))
            rows.append(
                f"<tr>{_verdict(bool(c.get('correct')))}<td>{float(c.get('reward', 0.0)):.3g}</td>"
                f"<td>{float(c.get('advantage', 0.0)):+.3f}</td><td>{html.escape(str(c.get('length', '')))}</td>"
                f"<td>{html.escape(str(c.get('reflection_hits', '')))}</td><td>{_types(text) or '–'}</td>"
                f"<td>{html.escape(str(c.get('reason', '')))}</td>"
                f'<td><pre class="completion">{highlight(text)}</pre></td></tr>'
            )
        blocks.append(
            f'<div class="group" data-key="{key}" hidden><p>gold <b>{html.escape(str(g.get("gold", "")))}</b>'
            f"</p><details><summary>prompt</summary><pre>{html.escape(str(g.get('prompt', '')))}</pre></details>"
            "<table><thead><tr><th></th><th>reward</th><th>advantage</th><th>length</th><th>reflection</th>"
            f"<th>behaviour</th><th>reason</th><th>completion</th></tr></thead><tbody>{''.join(rows)}"
            "</tbody></table></div>"
        )
    return select_options(options), "\n".join(blocks)


def timeline_view(
    timelines: Sequence[dict[str, list[dict]]],
    info: dict[str, dict],
    names: Sequence[str],
    highlight: Highlighter,
) -> tuple[str, str, str | None]:
    """``(options of the problem picker, one hidden <div> per problem, the default problem)``.

    One row per evaluated step, one column group per run (completions side by side); the step at which a
    run's answer flipped to correct for good (``flip_step``) is marked ``class="flip"``.
    """
    ids = sorted({pid for t in timelines for pid in t})
    options, blocks, default = [], [], None
    for pid in ids:
        flips = []
        for t in timelines:
            line = t.get(pid, [])
            flips.append(flip_step([int(r["step"]) for r in line], [bool(r.get("correct")) for r in line]))
        label = pid + "".join(f" · {names[i]} flips at {f}" for i, f in enumerate(flips) if f is not None)
        options.append((pid, label))
        if default is None and flips and flips[0] is not None:
            default = pid
        steps = sorted({int(r["step"]) for t in timelines for r in t.get(pid, [])})
        by_step = [{int(r["step"]): r for r in t.get(pid, [])} for t in timelines]
        rows = []
        for step in steps:
            cells = []
            for i, rows_at in enumerate(by_step):
                r = rows_at.get(step)
                if r is None:
                    cells.append('<td colspan="3">–</td>')
                    continue
                flip = ' class="flip"' if flips[i] == step else ""
                cells.append(
                    f"{_verdict(bool(r.get('correct')))}<td{flip}>{html.escape(str(r.get('length', '')))}"
                    f"{' · flipped' if flip else ''}</td>"
                    f'<td><pre class="completion">{highlight(str(r.get("completion", "")))}</pre></td>'
                )
            rows.append(f'<tr data-step="{step}"><td>{step}</td>{"".join(cells)}</tr>')
        q = info.get(pid, {})
        head = "".join(f'<th colspan="3">{html.escape(n)}</th>' for n in names)
        blocks.append(
            f'<div class="timeline" data-problem="{html.escape(pid)}" hidden>'
            f"<p>{html.escape(str(q.get('question', '')))} — gold <b>{html.escape(str(q.get('gold', '')))}</b></p>"
            f"<table><thead><tr><th>step</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    default = default or (ids[0] if ids else None)
    return select_options(options, default), "\n".join(blocks), default


BEHAVIOUR_OPTIONS = select_options([(t, t) for t in BEHAVIOUR_TYPES])

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
figure { display: inline-block; margin: 0.5em; } figure svg { width: 560px; height: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
pre.completion { background: #f7f7f7; padding: 4px; white-space: pre-wrap; max-width: 700px; margin: 0; }
mark { background: #ffd54f; } .ok { color: #2e7d32; } .bad { color: #c62828; }
td.flip { background: #c8e6c9; font-weight: bold; }
tr[hidden], div[hidden] { display: none; }
"""

SCRIPT = """
const $ = id => document.getElementById(id);
const FILTERS = {step: 'step-filter', run: 'run-filter', correct: 'correct-filter', reason: 'reason-filter',
                 behaviour: 'behaviour-filter', q: 'search'};
function showOne(selector, attr, value) {
  let shown = 0;
  for (const el of document.querySelectorAll(selector)) { el.hidden = el.dataset[attr] !== value; shown += !el.hidden; }
  return shown;
}
function applyFilter() {
  const v = {}; for (const [k, id] of Object.entries(FILTERS)) v[k] = $(id).value;
  const q = v.q.trim().toLowerCase(), onlyReflect = $('reflect-filter').checked;
  let shown = 0;
  for (const row of document.querySelectorAll('#samples tbody tr')) {
    const ok = (v.step === 'all' || row.dataset.step === v.step) && (v.run === 'all' || row.dataset.run === v.run)
      && (v.correct === 'all' || row.dataset.correct === v.correct)
      && (v.reason === 'all' || row.dataset.reason === v.reason)
      && (v.behaviour === 'all' || row.dataset.behaviours.split(' ').includes(v.behaviour))
      && (!onlyReflect || row.dataset.reflect === '1')
      && (!q || row.querySelector('pre.completion').textContent.toLowerCase().includes(q));
    row.hidden = !ok; shown += ok;
  }
  $('shown-count').textContent = shown;
  $('group-shown').textContent = $('group-select') ? showOne('div.group', 'key', $('group-select').value) : 0;
  $('timeline-shown').textContent = $('problem-select') ? showOne('div.timeline', 'problem', $('problem-select').value) : 0;
  const parts = [];
  for (const [k, id] of Object.entries(FILTERS)) if ($(id).value && $(id).value !== 'all') parts.push(k + '=' + encodeURIComponent($(id).value));
  for (const [k, id] of [['group', 'group-select'], ['problem', 'problem-select']]) if ($(id) && $(id).value) parts.push(k + '=' + encodeURIComponent($(id).value));
  history.replaceState(null, '', '#' + parts.join('&'));
}
window.addEventListener('DOMContentLoaded', () => {
  const ids = {...FILTERS, group: 'group-select', problem: 'problem-select'};
  for (const part of location.hash.slice(1).split('&')) {
    const [k, val] = part.split('=');
    if (ids[k] && $(ids[k]) && val !== undefined) $(ids[k]).value = decodeURIComponent(val);
  }
  for (const id of [...Object.values(ids), 'reflect-filter']) if ($(id)) {
    $(id).addEventListener('change', applyFilter); $(id).addEventListener('input', applyFilter);
  }
  applyFilter();
  const drawn = [...document.querySelectorAll('figure svg')].filter(s => s.getBoundingClientRect().width > 0);
  document.body.dataset.figuresRendered = drawn.length;
});
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>r1zero report: {title}</title>
<style>{style}</style></head>
<body>
<h1>r1zero report: {title}</h1>
<ol id="runs">{runs}</ol>
<h2>Curves</h2>
{figures}
<h2>Step 0 vs final</h2>
<table id="summary"><thead><tr><th>metric</th>{summary_head}</tr></thead><tbody>
{table}
</tbody></table>
{diff}
<h2>Behaviour types (held-out)</h2>
{behaviour}
<h2>Aha moment</h2>
{aha}
<h2>Samples</h2>
<p>Search <input id="search" type="search" placeholder="text in completions">
run <select id="run-filter"><option value="all">all</option>{run_options}</select>
step <select id="step-filter"><option value="all">all</option>{options}</select>
verdict <select id="correct-filter"><option value="all">all</option><option value="1">correct</option>
<option value="0">incorrect</option></select>
reason <select id="reason-filter"><option value="all">all</option>{reason_options}</select>
behaviour <select id="behaviour-filter"><option value="all">all</option>{behaviour_options}</select>
<label><input type="checkbox" id="reflect-filter"> only with reflection words</label>
— <span id="shown-count">{total}</span> shown{note}</p>
<table id="samples"><thead><tr><th>run</th><th>step</th><th></th><th>reason</th><th>answer / gold</th>
<th>length</th><th>reflection</th><th>behaviour</th><th>completion</th></tr></thead><tbody>
{rows}
</tbody></table>
<h2>Group view</h2>
{groups}
<h2>Problem timeline</h2>
{timeline}
<h2>Config</h2>
{config}
<script>{script}</script>
</body></html>
"""

"""``r1zero report RUN_DIR``: one self-contained HTML file that shows what a run did.

The page holds the figures as inline SVG (no network, no files beside it), the resolved config, a step-0
vs final table, the aha step with example completions before and after it, and a browser of sample
completions (reflection words highlighted, verdict reasons shown) with a step filter. The filter also
reads the URL fragment (``report.html#step=40``), so a link can point at one step.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from r1zero.eval.aha import AhaResult
from r1zero.eval.behaviour import find_reflection
from r1zero.eval.plots import OPTIONAL_PANELS, PANELS, finish_axes, plt
from r1zero.eval.rundir import Run, aha_for_run, load_run, reflection_baseline, series

__all__ = ["build_report", "highlight", "main", "summary_rows", "write_report"]

#: at most this many sample rows in the page (spread evenly over steps) to keep the file small
MAX_SAMPLE_ROWS = 1500


def highlight(text: str, preset: str | tuple[str, ...] = "r1zero") -> str:
    """HTML-escape ``text`` and wrap every reflection keyword hit in ``<mark>``.

    >>> highlight("3<4. Wait, 3+4=7", "simplerl_zoo")
    '3&lt;4. <mark>Wait</mark>, 3+4=7'
    """
    out, last = [], 0
    for start, end in find_reflection(text, preset):
        out += [html.escape(text[last:start]), f"<mark>{html.escape(text[start:end])}</mark>"]
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def _figure_svg(name: str, run: Run) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw = PANELS[name] if name in PANELS else OPTIONAL_PANELS[name][1]
    draw(ax, [run])
    finish_axes(ax)
    fig.tight_layout()
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and doctype: inline SVG needs neither


def _first_last(run: Run, key: str) -> tuple[float | None, float | None]:
    _, values = series(run.metrics, key)
    return (values[0], values[-1]) if values else (None, None)


def summary_rows(run: Run) -> list[tuple[str, float | None, float | None]]:
    """``(label, step-0 value, final value)`` rows: held-out metrics, each eval benchmark, and wall time."""
    rows = []
    for key, label in (
        ("heldout/accuracy", "held-out accuracy"),
        ("heldout/format_rate", "held-out format rate"),
        ("heldout/length_mean", "held-out mean length (tokens)"),
        ("heldout/reflection_per_response", "held-out reflection rate"),
    ):
        first, last = _first_last(run, key)
        if first is not None:
            rows.append((label, first, last))
    benches = {r["benchmark"] for r in run.evals if "benchmark" in r}
    if rows:  # the trainer's held-out lines in eval.jsonl repeat the heldout/* metrics above
        benches.discard("heldout")
    for bench in sorted(benches):
        evals = sorted((r for r in run.evals if r.get("benchmark") == bench), key=lambda r: r["step"])
        for key, label in (
            ("pass@1", "pass@1"),
            ("format_rate", "format rate"),
            ("length/mean", "mean length"),
            ("reflection/per_response", "reflection rate"),
        ):
            values = [r[key] for r in evals if isinstance(r.get(key), (int, float))]
            if values:
                rows.append((f"{bench} {label}", values[0], values[-1]))
    _, elapsed = series(run.metrics, "time/elapsed")
    if elapsed:
        rows.append(("wall time (s)", 0.0, elapsed[-1]))
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _pick_samples(samples: list[dict], limit: int) -> list[dict]:
    if len(samples) <= limit:
        return samples
    stride = len(samples) / limit
    return [samples[int(i * stride)] for i in range(limit)]


def _sample_rows(samples: Sequence[dict], preset) -> str:
    rows = []
    for s in samples:
        correct = bool(s.get("correct"))
        hits = s.get("reflection_hits")
        if hits is None:
            hits = len(find_reflection(str(s.get("completion", "")), preset))
        rows.append(
            f'<tr data-step="{int(s.get("step", 0))}" data-correct="{int(correct)}" data-reflect="{int(hits > 0)}">'
            f"<td>{int(s.get('step', 0))}</td>"
            f'<td class="{"ok" if correct else "bad"}">{"✓" if correct else "✗"}</td>'
            f"<td>{html.escape(str(s.get('reason', '')))}</td>"
            f"<td>{html.escape(str(s.get('extracted', '')))} / {html.escape(str(s.get('gold', '')))}</td>"
            f"<td>{html.escape(str(s.get('length', '')))}</td><td>{hits}</td>"
            f"<td><details><summary>prompt</summary><pre>{html.escape(str(s.get('prompt', '')))}</pre></details>"
            f'<pre class="completion">{highlight(str(s.get("completion", "")), preset)}</pre></td></tr>'
        )
    return "\n".join(rows)


def _aha_section(run: Run, aha: AhaResult | None, preset) -> str:
    if aha is None:
        return "<p>No aha test: the run has no step-0 reflection baseline or too few steps.</p>"
    raw, count = reflection_baseline(run)
    text = (
        f"<p>Step-0 reflection rate (baseline): <b>{_fmt(raw)}</b> over {count} responses (tested against "
        f"p0 = {aha.baseline:.3f}, floored at 1/(2N)). Test: one-sided exact binomial test over windows of "
        f"{aha.window} steps at α = {aha.alpha}, and the rate must stay above the baseline afterwards "
        "(see docs/evaluation.md).</p>"
    )
    if aha.step is None:
        return (
            text
            + '<p id="aha-result">No aha step: the reflection rate never rose significantly and stayed up.</p>'
        )
    text += (
        f'<p id="aha-result">Aha step: <b>{aha.step}</b> (p = {aha.p_value:.2g}); mean rate before '
        f"{_fmt(aha.rate_before)}, pooled rate after {_fmt(aha.rate_after)}.</p>"
    )
    before = [s for s in run.samples if s.get("step", 0) < aha.step][-2:]
    after = [
        s
        for s in run.samples
        if s.get("step", 0) >= aha.step and find_reflection(str(s.get("completion", "")), preset)
    ][:2]
    for title, picked in (("Before", before), ("After", after)):
        text += f"<h3>{title} the aha step</h3>"
        if not picked:
            text += "<p>(no sample recorded)</p>"
        for s in picked:
            text += f'<p>step {s.get("step")}:</p><pre class="completion">{highlight(str(s.get("completion", "")), preset)}</pre>'
    return text


def build_report(run_dir: str | Path) -> str:
    """The report of one run as an HTML string (self-contained: no external resources)."""
    run = load_run(run_dir)
    preset = run.config.get("run", {}).get("reflection", "r1zero")
    aha = aha_for_run(run)
    optional = [name for name, (key, _) in OPTIONAL_PANELS.items() if any(key in m for m in run.metrics)]
    figures = "\n".join(
        f'<figure id="fig-{name}">{_figure_svg(name, run)}</figure>' for name in [*PANELS, *optional]
    )
    table = "\n".join(
        f"<tr><td>{html.escape(label)}</td><td>{_fmt(a)}</td><td>{_fmt(b)}</td></tr>"
        for label, a, b in summary_rows(run)
    )
    samples = _pick_samples(run.samples, MAX_SAMPLE_ROWS)
    steps = sorted({int(s.get("step", 0)) for s in samples})
    options = "".join(f'<option value="{s}">{s}</option>' for s in steps)
    note = f" (showing {len(samples)} of {len(run.samples)})" if len(samples) < len(run.samples) else ""
    return _PAGE.format(
        title=html.escape(run.variant),
        path=html.escape(str(run.path)),
        figures=figures,
        table=table,
        aha=_aha_section(run, aha, preset),
        config=html.escape(json.dumps(run.config, indent=2)),
        options=options,
        rows=_sample_rows(samples, preset),
        total=len(samples),
        note=note,
        style=_STYLE,
        script=_SCRIPT,
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) and return its path."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    path.write_text(build_report(run_dir), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="r1zero report", description="Write a self-contained HTML report of a run."
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="output file (default RUN_DIR/report.html)")
    args = p.parse_args(argv)
    try:
        out = write_report(args.run, args.out)
    except (ValueError, OSError) as exc:  # a missing, empty or corrupt run directory: say which
        print(f"r1zero report: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
figure { display: inline-block; margin: 0.5em; } figure svg { width: 560px; height: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
#samples td pre.completion { white-space: pre-wrap; max-width: 700px; margin: 0; }
pre.completion { background: #f7f7f7; padding: 4px; white-space: pre-wrap; }
mark { background: #ffd54f; } .ok { color: #2e7d32; } .bad { color: #c62828; }
tr[hidden] { display: none; }
"""

_SCRIPT = """
function applyFilter() {
  const step = document.getElementById('step-filter').value;
  const onlyReflect = document.getElementById('reflect-filter').checked;
  const correct = document.getElementById('correct-filter').value;
  let shown = 0;
  for (const row of document.querySelectorAll('#samples tbody tr')) {
    const ok = (step === 'all' || row.dataset.step === step)
      && (!onlyReflect || row.dataset.reflect === '1')
      && (correct === 'all' || row.dataset.correct === correct);
    row.hidden = !ok;
    if (ok) shown++;
  }
  document.getElementById('shown-count').textContent = shown;
  history.replaceState(null, '', step === 'all' ? '#' : '#step=' + step);
}
window.addEventListener('DOMContentLoaded', () => {
  const m = location.hash.match(/step=(\\d+)/);
  if (m) document.getElementById('step-filter').value = m[1];
  for (const id of ['step-filter', 'reflect-filter', 'correct-filter'])
    document.getElementById(id).addEventListener('change', applyFilter);
  applyFilter();
  const drawn = [...document.querySelectorAll('figure svg')].filter(s => s.getBoundingClientRect().width > 0);
  document.body.dataset.figuresRendered = drawn.length;
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>r1zero report: {title}</title>
<style>{style}</style></head>
<body>
<h1>r1zero report: {title}</h1>
<p><code>{path}</code></p>
<h2>Curves</h2>
{figures}
<h2>Step 0 vs final</h2>
<table id="summary"><thead><tr><th>metric</th><th>step 0</th><th>final</th></tr></thead><tbody>
{table}
</tbody></table>
<h2>Aha moment</h2>
{aha}
<h2>Samples</h2>
<p>Step <select id="step-filter"><option value="all">all</option>{options}</select>
<label><input type="checkbox" id="reflect-filter"> only with reflection words</label>
verdict <select id="correct-filter"><option value="all">all</option><option value="1">correct</option>
<option value="0">incorrect</option></select>
— <span id="shown-count">{total}</span> shown{note}</p>
<table id="samples"><thead><tr><th>step</th><th></th><th>reason</th><th>answer / gold</th><th>length</th>
<th>reflection</th><th>completion</th></tr></thead><tbody>
{rows}
</tbody></table>
<h2>Config</h2>
<details><summary>config.json</summary><pre id="config">{config}</pre></details>
<script>{script}</script>
</body></html>
"""

if __name__ == "__main__":
    raise SystemExit(main())

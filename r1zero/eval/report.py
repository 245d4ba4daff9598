"""``r1zero report RUN_DIR [RUN_DIR ...]``: one self-contained HTML file that shows what runs did.

The page holds the figures as inline SVG (no network, no files beside it; several runs are overlaid), a
step-0 vs final table per run and the settings in which the runs differ, behaviour types
(``r1zero.eval.behaviour_types``) of the held-out completions at the first and last evaluation, the aha
step, a browser of sample completions (text search; filters by run, step, verdict, verdict reason,
behaviour type and reflection words), a group view (all G completions of one prompt with reward,
advantage, length and reflection; ``groups.jsonl``) and a problem timeline (one held-out problem at every
evaluated step, runs side by side, the flip to correct marked; ``heldout.jsonl``). Filters and pickers
read the URL fragment (``report.html#step=40&q=wait``), so a link can point at one view.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from r1zero.eval import report_html as page
from r1zero.eval.aha import AhaResult
from r1zero.eval.behaviour import count_reflection, find_reflection
from r1zero.eval.behaviour_types import BEHAVIOUR_TYPES, behaviour_rates
from r1zero.eval.plots import OPTIONAL_PANELS, PANELS, finish_axes, plt
from r1zero.eval.report_data import config_diff, heldout_timelines, read_groups
from r1zero.eval.rundir import Run, aha_for_run, load_run, reflection_baseline, series

__all__ = ["build_report", "highlight", "main", "summary_rows", "write_report"]

#: at most this many sample rows in the page (spread evenly over steps) to keep the file small
MAX_SAMPLE_ROWS = 1500
#: at most this many groups per run in the group view (spread evenly over steps)
MAX_GROUPS = 200


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


def _figure_svg(name: str, runs: Sequence[Run]) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw = PANELS[name] if name in PANELS else OPTIONAL_PANELS[name][1]
    draw(ax, runs)
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


def _behaviour_section(runs: Sequence[Run], timelines: Sequence[dict[str, list[dict]]]) -> str:
    """Share of held-out completions of each behaviour type at the first and the last evaluation."""
    rows = []
    for run, timeline in zip(runs, timelines, strict=True):
        by_step: dict[int, list[dict]] = {}
        for line in timeline.values():
            for r in line:
                by_step.setdefault(int(r["step"]), []).append(r)
        if not by_step:
            continue
        cells = []
        for step in (min(by_step), max(by_step)):
            rs = by_step[step]
            rates = behaviour_rates(
                [str(r.get("completion", "")) for r in rs], [bool(r.get("correct")) for r in rs]
            )
            cells.append((step, rates))
        for key in [*BEHAVIOUR_TYPES, "any", "effective", "superficial"]:
            values = "".join(f"<td>{_fmt(rates[f'behaviour/{key}'])}</td>" for _, rates in cells)
            rows.append(f"<tr><td>{html.escape(run.variant)}</td><td>{key}</td>{values}</tr>")
        head = "".join(f"<th>step {step}</th>" for step, _ in cells)
    if not rows:
        return (
            "<p>No held-out completions recorded (<code>heldout.jsonl</code>): a run of an older version.</p>"
        )
    return (
        "<p>Rule-based types (verification, backtracking, subgoal setting, enumeration); <i>effective</i> = "
        "some type and a correct answer, <i>superficial</i> = some type and a wrong one. Per-step curves of "
        "the training completions are in the <i>behaviour</i> figure.</p>"
        f'<table id="behaviour"><thead><tr><th>run</th><th>type</th>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _summary(runs: Sequence[Run]) -> tuple[str, str]:
    per_run = [{label: (a, b) for label, a, b in summary_rows(run)} for run in runs]
    labels = list(dict.fromkeys(label for rows in per_run for label in rows))
    body = []
    for label in labels:
        cells = "".join(
            f"<td>{_fmt(rows.get(label, (None, None))[0])}</td><td>{_fmt(rows.get(label, (None, None))[1])}</td>"
            for rows in per_run
        )
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    if len(runs) == 1:
        head = "<th>step 0</th><th>final</th>"
    else:
        head = "".join(f"<th>{i}: step 0</th><th>{i}: final</th>" for i in range(len(runs)))
    return head, "\n".join(body)


def _diff_section(runs: Sequence[Run]) -> str:
    if len(runs) < 2:
        return ""
    rows = config_diff([run.config for run in runs])
    head = "".join(f"<th>{i}: {html.escape(run.name)}</th>" for i, run in enumerate(runs))
    body = "".join(
        f"<tr><td>{html.escape(key)}</td>{''.join(f'<td>{html.escape(v)}</td>' for v in values)}</tr>"
        for key, values in rows
    )
    return (
        "<h2>Settings that differ</h2>"
        f'<table id="config-diff"><thead><tr><th>config.json key</th>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _spread(rows: list, limit: int) -> list:
    return _pick_samples(rows, limit)


def build_report(run_dirs: str | Path | Sequence[str | Path]) -> str:
    """The report of one run, or of several runs compared, as an HTML string (no external resources)."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not dirs:
        raise ValueError("build_report needs at least one run directory")
    runs = [load_run(d) for d in dirs]
    presets = [run.config.get("run", {}).get("reflection", "r1zero") for run in runs]
    names = [f"{i}: {run.variant}" for i, run in enumerate(runs)]

    def light(i: int) -> page.Highlighter:
        return lambda text: highlight(text, presets[i])

    optional = [
        n for n, (key, _) in OPTIONAL_PANELS.items() if any(key in m for r in runs for m in r.metrics)
    ]
    figures = "\n".join(f'<figure id="fig-{n}">{_figure_svg(n, runs)}</figure>' for n in [*PANELS, *optional])
    summary_head, table = _summary(runs)

    samples = _pick_samples([(i, s) for i, run in enumerate(runs) for s in run.samples], MAX_SAMPLE_ROWS)
    total = sum(len(run.samples) for run in runs)
    steps = sorted({int(s.get("step", 0)) for _, s in samples})
    reasons = sorted({str(s.get("reason", "")) for _, s in samples})
    rows = "\n".join(
        page.sample_rows([(i, s)], light(i), lambda t, i=i: count_reflection(t, presets[i]))
        for i, s in samples
    )

    groups = [(i, g) for i, run in enumerate(runs) for g in _spread(read_groups(run.path), MAX_GROUPS)]
    group_options, group_blocks = page.group_view(groups, highlight)
    groups_html = (
        f'<p>Group <select id="group-select">{group_options}</select> — <span id="group-shown">0</span> shown. '
        "Advantages are the run's group-relative ones recomputed from the rewards.</p>" + group_blocks
        if groups
        else '<p>No groups recorded (<code>groups.jsonl</code>). <span id="group-shown">0</span></p>'
    )

    loaded = [heldout_timelines(run.path) for run in runs]
    timelines = [t for t, _ in loaded]
    info = {pid: q for _, i in loaded for pid, q in i.items()}
    t_options, t_blocks, default = page.timeline_view(timelines, info, names, highlight)
    timeline_html = (
        f'<p>Problem <select id="problem-select">{t_options}'
        f'</select> — <span id="timeline-shown">0</span> shown. The step where the answer turned correct '
        "for good is marked.</p>" + t_blocks
        if default is not None
        else '<p>No held-out completions recorded (<code>heldout.jsonl</code>). <span id="timeline-shown">0</span></p>'
    )
    aha = "".join(
        (f"<h3>{html.escape(names[i])}</h3>" if len(runs) > 1 else "")
        + _aha_section(run, aha_for_run(run), presets[i])
        for i, run in enumerate(runs)
    )
    config = "".join(
        f"<details><summary>config.json of {html.escape(names[i])}</summary>"
        f'<pre id="config{"" if i == 0 else f"-{i}"}">{html.escape(json.dumps(run.config, indent=2))}</pre></details>'
        for i, run in enumerate(runs)
    )
    note = f" (showing {len(samples)} of {total})" if len(samples) < total else ""
    return page.PAGE.format(
        title=html.escape(" vs ".join(run.variant for run in runs)),
        runs="".join(
            f"<li><code>{html.escape(str(run.path))}</code> — {html.escape(run.variant)}</li>" for run in runs
        ),
        figures=figures,
        summary_head=summary_head,
        table=table,
        diff=_diff_section(runs),
        behaviour=_behaviour_section(runs, timelines),
        aha=aha,
        run_options=page.select_options([(str(i), n) for i, n in enumerate(names)]),
        options="".join(f'<option value="{s}">{s}</option>' for s in steps),
        reason_options=page.select_options([(r, r) for r in reasons]),
        behaviour_options=page.BEHAVIOUR_OPTIONS,
        rows=rows,
        total=len(samples),
        note=note,
        groups=groups_html,
        timeline=timeline_html,
        config=config,
        style=page.STYLE,
        script=page.SCRIPT,
    )


def default_out(run_dirs: Sequence[str | Path]) -> Path:
    """``RUN/report.html`` for one run; ``FIRST_RUN/compare.html`` for several."""
    return Path(run_dirs[0]) / ("report.html" if len(run_dirs) == 1 else "compare.html")


def write_report(run_dirs: str | Path | Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report (default ``default_out``) and return its path."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    path = Path(out) if out is not None else default_out(dirs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(dirs), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="r1zero report",
        description="Write a self-contained HTML report of a run, or of several runs compared.",
    )
    p.add_argument("runs", nargs="+", help="run directories (several are compared in one page)")
    p.add_argument(
        "--out", help="output file (default RUN_DIR/report.html; several runs: FIRST/compare.html)"
    )
    args = p.parse_args(argv)
    try:
        out = write_report(args.runs, args.out)
    except (ValueError, OSError) as exc:  # a missing, empty or corrupt run directory: say which
        print(f"r1zero report: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

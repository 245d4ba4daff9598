"""`r1zero plot` on synthetic run directories: files written, curves and labels present, overlays."""

import json

import pytest

from r1zero.eval.plots import main, on_wall_time, plot_runs
from r1zero.eval.rundir import aha_for_run, ema, load_run, read_jsonl

from .fixtures import write_synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = write_synthetic_run(root / "demo", variant="demo", aha_step=25)
    b = write_synthetic_run(root / "flat", variant="no-aha", seed=1, aha_step=None, lift=0.4)
    return a, b


def test_plot_one_run_writes_png_and_svg(runs, capsys):
    assert main([str(runs[0])]) == 0
    out = runs[0] / "plots"
    for name in ("accuracy", "length", "reflection", "format", "overview"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    reflection = (out / "reflection.svg").read_text()
    assert "step-0 baseline" in reflection and "aha (step 25)" in reflection
    accuracy = (out / "accuracy.svg").read_text()
    assert "eval list_sum pass@1" in accuracy and "95% CI" in accuracy and "train reward" in accuracy
    length = (out / "length.svg").read_text()
    assert "p10-p90" in length and "incorrect" in length
    assert "first jump ends (step 30), then +6%" in length  # held-out 84.6 at step 30, 89.3 at step 60
    assert "truncation rate" in (out / "format.svg").read_text()


def test_overlay_names_each_variant(runs, tmp_path):
    paths = plot_runs(runs, tmp_path, formats=("svg",))
    assert len(paths) == 5
    svg = (tmp_path / "overview.svg").read_text()
    assert "demo (cpu-demo): train reward" in svg and "no-aha (cpu-demo): train reward" in svg
    assert "demo (cpu-demo): aha (step 25)" in svg and "no-aha (cpu-demo): aha" not in svg


def test_aha_for_runs(runs):
    assert aha_for_run(load_run(runs[0])).step == 25
    assert aha_for_run(load_run(runs[1])).step is None


def test_crashed_run_with_half_line_still_plots(runs, tmp_path):
    run = write_synthetic_run(tmp_path / "crashed", steps=12)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 13, "train/rew')
    assert len(read_jsonl(run / "metrics.jsonl")) == 13
    assert len(plot_runs([run], formats=("png",))) == 5


def test_not_a_run_dir(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        plot_runs([tmp_path])


def test_ema_smooths_noise():
    values = [0.0, 1.0] * 20
    smoothed = ema(values, 0.1)
    assert max(smoothed[10:]) - min(smoothed[10:]) < 0.25
    assert json.dumps(smoothed)  # plain floats


def test_console_dispatch_plot_and_report(runs, tmp_path, capsys):
    from r1zero.cli import main as r1zero_main

    assert r1zero_main(["plot", str(runs[1]), "--out", str(tmp_path / "p"), "--formats", "png"]) == 0
    assert (tmp_path / "p" / "overview.png").is_file()
    assert r1zero_main(["report", str(runs[1]), "--out", str(tmp_path / "r.html")]) == 0
    assert "No aha step" in (tmp_path / "r.html").read_text()


def test_critic_and_reward_model_panels_on_a_wall_time_axis(tmp_path):
    run = write_synthetic_run(tmp_path / "ppo-rm", variant="ppo-rm", aha_step=None)
    rows = read_jsonl(run / "metrics.jsonl")
    for row in rows[1:]:
        step = row["step"]
        row.update({"critic/value_loss": 1.0 / step, "critic/explained_variance": 1 - 1.0 / step})
        row.update({"train/reward/learned": 0.05 * step, "monitor/reward_divergence": float(step > 40)})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    paths = plot_runs([run], tmp_path / "plots", formats=("svg",), x="time")
    names = sorted(p.name for p in paths)
    assert "critic_time.svg" in names and "reward_model_time.svg" in names and "overview_time.svg" in names
    critic = (tmp_path / "plots" / "critic_time.svg").read_text()
    assert "explained variance" in critic and "wall time (s)" in critic
    reward = (tmp_path / "plots" / "reward_model_time.svg").read_text()
    assert "learned reward" in reward and "divergence monitor" in reward and "verifier score" in reward
    retimed = [r["step"] for r in on_wall_time(load_run(run)).metrics]
    assert retimed[:3] == [0.0, 3.0, 6.0]  # steps became the fixture's time/elapsed (3 s per step)
    with pytest.raises(ValueError, match="x must be"):
        plot_runs([run], tmp_path / "p2", x="tokens")
    from r1zero.eval.report import build_report

    page = build_report(run)
    assert 'id="fig-critic"' in page and 'id="fig-reward_model"' in page

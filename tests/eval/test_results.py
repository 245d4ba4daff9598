"""Average over benchmarks, result files (where, never replaced) and --compare: hand-computed values."""

import json
import math

import pytest

from r1zero.eval.cli import format_table, main
from r1zero.eval.metrics import macro_mean_ci, se_from_ci, standard_error, z_value
from r1zero.eval.results import (
    FORMAT,
    build_result,
    compare_table,
    load_result,
    result_dir,
    result_name,
    save_result,
    suite_name,
)
from r1zero.eval.summary import SampleRecord, average_results, summarize

from .fixtures import write_random_model, write_synthetic_run

Z = 1.959963984540054  # the 97.5% standard normal quantile


# ---------------------------------------------------------------- the interval of an average
@pytest.mark.parametrize(
    ("means", "ses", "expected"),
    [
        ([0.5], [0.1], (0.5, 0.5 - Z * 0.1, 0.5 + Z * 0.1)),  # one benchmark: mean +- z se
        ([0.2, 0.6], [0.03, 0.04], (0.4, 0.4 - Z * 0.05 / 2, 0.4 + Z * 0.05 / 2)),  # sqrt(.03² + .04²) = .05
        ([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], (0.2, 0.2, 0.2)),  # no spread: a point
        ([0.02, 0.0], [0.05, 0.0], (0.01, 0.0, 0.01 + Z * 0.05 / 2)),  # clipped at 0 (rates)
        ([1.0, 0.98], [0.0, 0.05], (0.99, 0.99 - Z * 0.05 / 2, 1.0)),  # clipped at 1
    ],
)
def test_macro_mean_ci_is_mean_plus_minus_z_sqrt_sum_of_variances_over_b(means, ses, expected):
    assert macro_mean_ci(means, ses) == pytest.approx(expected, abs=1e-12)


def test_z_standard_error_and_se_from_ci():
    assert z_value(0.95) == pytest.approx(Z, abs=1e-12)
    assert z_value(0.99) == pytest.approx(2.5758293035489004, abs=1e-12)
    # [0, 1, 1, 0]: sample variance 1/3, se = sqrt(1/3) / 2
    assert standard_error([0.0, 1.0, 1.0, 0.0]) == pytest.approx(math.sqrt(1 / 3) / 2)
    assert standard_error([0.25, 0.75]) == pytest.approx(0.25)  # sd sqrt(0.125) / sqrt(2)
    assert standard_error([0.7]) == 0.0
    assert se_from_ci(0.3, 0.7) == pytest.approx(0.2 / Z)
    with pytest.raises(ValueError, match="as many standard errors as means"):
        macro_mean_ci([0.1, 0.2], [0.1])


def _rec(pid, j, correct):
    return SampleRecord(pid, j, "p", "x", "4", correct, True, "", "4" if correct else "5", 1.0, 3, False, 0)


def test_summary_records_the_standard_error_over_problems():
    # per-problem pass@1: 1/2, 0, 1 -> mean 1/2, sample variance 1/4, se = 0.5 / sqrt(3)
    records = [[_rec("a", 0, True), _rec("a", 1, False)], [_rec("b", 0, False), _rec("b", 1, False)]]
    records.append([_rec("c", 0, True), _rec("c", 1, True)])
    s = summarize(records, n_resamples=50)
    assert s["pass@1"] == pytest.approx(0.5)
    assert s["pass@1_se"] == pytest.approx(0.5 / math.sqrt(3))
    assert s["pass@2_se"] == pytest.approx(standard_error([1.0, 0.0, 1.0]))


# ---------------------------------------------------------------- the average row
A = {"benchmark": "aime24", "problems": 30, "n": 4, "pass@1": 0.1, "pass@1_se": 0.05, "pass@1_ci": [0.0, 0.2]}
A |= {"pass@4": 0.3, "pass@4_se": 0.08, "format_rate": 0.9, "length/mean": 300.0, "accuracy/strict": 0.1}
A |= {"length/correct_mean": 250.0, "seconds": 9.0, "reasons": {"wrong": 3}, "temperature": 1.0}
B = {
    "benchmark": "math500",
    "problems": 500,
    "n": 4,
    "pass@1": 0.5,
    "pass@1_se": 0.02,
    "pass@1_ci": [0.46, 0.54],
}
B |= {"pass@4": 0.7, "pass@4_se": 0.02, "format_rate": 0.7, "length/mean": 200.0, "accuracy/strict": 0.4}
B |= {"seconds": 20.0, "temperature": 1.0}
C = {
    "benchmark": "amc23",
    "problems": 40,
    "n": 4,
    "pass@1": 0.3,
    "pass@1_ci": [0.3 - 0.04 * Z, 0.3 + 0.04 * Z],
}
C |= {"pass@4": 0.6, "pass@4_se": 0.06, "format_rate": 0.8, "length/mean": 250.0, "accuracy/strict": 0.25}


def test_average_of_three_benchmarks_hand_computed():
    avg = average_results([A, B, C])
    # pass@1: (0.1 + 0.5 + 0.3) / 3 = 0.3; C has no _se: its CI half-width / z = 0.04
    # se = sqrt(0.05² + 0.02² + 0.04²) / 3 = sqrt(0.0045) / 3
    se = math.sqrt(0.0045) / 3
    assert avg["pass@1"] == pytest.approx(0.3)
    assert avg["pass@1_se"] == pytest.approx(se)
    assert avg["pass@1_ci"] == pytest.approx([0.3 - Z * se, 0.3 + Z * se])
    # pass@4: 1.6 / 3, se = sqrt(0.08² + 0.02² + 0.06²) / 3 = sqrt(0.0104) / 3
    assert avg["pass@4"] == pytest.approx(1.6 / 3)
    assert avg["pass@4_se"] == pytest.approx(math.sqrt(0.0104) / 3)
    # numbers without an interval: plain means
    assert avg["format_rate"] == pytest.approx(0.8) and "format_rate_ci" not in avg
    assert avg["length/mean"] == pytest.approx(250.0)
    assert avg["accuracy/strict"] == pytest.approx(0.25)
    # counts summed, n kept, bookkeeping and keys not every benchmark has left out
    assert (avg["benchmark"], avg["problems"], avg["n"]) == ("average", 570, 4)
    assert avg["benchmarks"] == ["aime24", "math500", "amc23"]
    assert not {"seconds", "length/correct_mean", "reasons", "temperature"} & set(avg)


def test_average_with_different_n_has_no_common_n():
    assert average_results([A, {**B, "n": 8}])["n"] is None


def test_format_table_prints_the_average_row_after_each_step():
    rows = [{**r, "step": step} for step in (0, 10) for r in (A, B)]
    rows = [{**r, "maj@4": 0.0, "length/clip_ratio": 0.0, "reflection/per_response": 0.0} for r in rows]
    lines = format_table(rows).splitlines()
    names = [line.split()[0] for line in lines[1:5]]
    assert names == ["aime24@0", "math500@0", "average@0", "aime24@10"]
    average = lines[3].split()
    # pass@1 (0.1 + 0.5) / 2 = 0.3, se sqrt(0.05² + 0.02²) / 2, problems 530
    half = Z * math.sqrt(0.0029) / 2
    assert average[1:4] == ["530", "4", "0.300"]
    assert " ".join(average[4:6]) == f"[{0.3 - half:.3f}, {0.3 + half:.3f}]"
    assert "normal approximation" in format_table(rows)
    assert "average" not in format_table([{**rows[0]}])  # one benchmark: no average row, no note


# ---------------------------------------------------------------- where results go
def test_suite_and_file_names():
    assert suite_name("eval/math6.json", ["gsm8k"]) == "math6"
    assert suite_name(None, ["list_sum", "countdown"]) == "list_sum+countdown"
    assert suite_name(None, ["a", "b", "c", "d", "e"]) == "a+4-more"
    assert result_name("math6") == "math6.result.json"
    assert result_name("math6", 120) == "math6-step000120.result.json"


def test_default_location_for_a_run_a_model_dir_and_neither(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "my-model"
    model.mkdir()
    assert result_dir("m", run_dir="runs/a").as_posix() == "runs/a/eval"
    assert result_dir(str(model)) == model / "eval"  # a local directory we may write
    assert result_dir("my-model") == model.relative_to(tmp_path) / "eval"  # relative, too
    assert result_dir("Qwen/Qwen2.5-Math-7B").as_posix() == "eval_results/Qwen__Qwen2.5-Math-7B"
    assert result_dir("tiny-base").as_posix() == "eval_results/tiny-base"  # the package's dir is not ours
    assert result_dir(str(model), out_dir="out").as_posix() == "out"  # --run.out_dir wins
    assert result_dir(str(model), run_dir="r", out_dir="o").as_posix() == "r/eval"  # a run keeps its own


def test_a_model_dir_we_cannot_write_saves_under_eval_results(tmp_path, monkeypatch):
    from r1zero.eval import results

    model = tmp_path / "frozen"
    model.mkdir()
    monkeypatch.setattr(results.os, "access", lambda path, mode: False)  # as for a read-only mount
    assert result_dir(str(model)).as_posix() == "eval_results/frozen"


def test_save_never_replaces_a_result(tmp_path):
    target = tmp_path / "eval" / "demo.result.json"
    first = save_result({"format": FORMAT, "x": 1}, target)
    second = save_result({"format": FORMAT, "x": 2}, target)
    third = save_result({"format": FORMAT, "x": 3}, target)
    assert (first, second, third) == (
        target,
        target.with_name("demo-2.result.json"),
        target.with_name("demo-3.result.json"),
    )
    assert [json.loads(p.read_text())["x"] for p in (first, second, third)] == [1, 2, 3]


def test_build_result_keeps_settings_once_and_the_average():
    rows = [{**r, "settings": {"n": 4}, "model": "m", "step": 10} for r in (A, B)]
    result = build_result(rows, "ckpt", "math", step=10, run_dir="runs/a")
    assert (result["format"], result["model"], result["suite"], result["step"]) == (
        FORMAT,
        "ckpt",
        "math",
        10,
    )
    assert result["settings"] == {"n": 4}
    assert set(result["benchmarks"]) == {"aime24", "math500"}
    assert not {"settings", "model", "step", "benchmark"} & set(result["benchmarks"]["aime24"])
    assert result["average"]["pass@1"] == pytest.approx(0.3)
    assert "average" not in build_result(rows[:1], "m", "s")


# ---------------------------------------------------------------- --compare
PREVIOUS = {"format": FORMAT, "model": "base", "step": 0, "settings": {"n": 4, "temperature": 1.0}}
PREVIOUS |= {
    "benchmarks": {
        "aime24": {"n": 4, "pass@1": 0.10, "pass@1_se": 0.03},
        "math500": {"n": 4, "pass@1": 0.40, "pass@1_se": 0.04},
        "gsm8k": {"n": 4, "pass@1": 0.70, "pass@1_ci": [0.70 - 0.02 * Z, 0.70 + 0.02 * Z]},
    }
}


def test_compare_table_golden():
    settings = {"n": 4, "temperature": 0.6}
    results = [
        {"benchmark": "aime24", "step": 40, "n": 4, "pass@1": 0.20, "pass@1_se": 0.04, "settings": settings},
        {"benchmark": "math500", "step": 40, "n": 4, "pass@1": 0.45, "pass@1_se": 0.03, "settings": settings},
        {"benchmark": "gsm8k", "step": 40, "n": 4, "pass@1": 0.75, "pass@1_se": 0.0, "settings": settings},
    ]
    # aime24: +10.0, +- 1.96 * sqrt(.03² + .04²) = 9.8 -> outside; math500: +5.0 within 9.8;
    # gsm8k: +5.0, its previous se from the CI (0.02): 1.96 * 2 = 3.9 -> outside;
    # average: 43.3 -> 46.7, se each sqrt(.03² + .04² + .02²) / 3 and sqrt(.04² + .03²) / 3
    half = 100 * Z * math.sqrt(0.0029 / 9 + 0.0025 / 9)
    assert f"{half:.1f}" == "4.8"
    assert compare_table(results, PREVIOUS, "prev.json").splitlines() == [
        "previous vs this: prev.json (base step 0); pass@1 in %",
        "benchmark        prev    this    diff  95% CI  outside",
        "aime24@40        10.0    20.0   +10.0    ±9.8  yes",
        "math500@40       40.0    45.0    +5.0    ±9.8  no",
        "gsm8k@40         70.0    75.0    +5.0    ±3.9  yes",
        "average@40       40.0    46.7    +6.7    ±4.8  yes",
        "settings differ (previous -> this): temperature 1.0 -> 0.6",
    ]


def test_compare_table_with_benchmarks_on_one_side_only():
    results = [
        {"benchmark": "aime24", "n": 4, "pass@1": 0.10, "pass@1_se": 0.03},
        {"benchmark": "math500", "n": 4, "pass@1": 0.40, "pass@1_se": 0.04},
        {"benchmark": "amc23", "n": 4, "pass@1": 0.25, "pass@1_se": 0.05},
    ]
    lines = compare_table(results, PREVIOUS, "p").splitlines()[2:]
    assert lines == [
        "aime24           10.0    10.0    +0.0    ±8.3  no",  # 1.96 * sqrt(2) * 3
        "math500          40.0    40.0    +0.0   ±11.1  no",  # 1.96 * sqrt(2) * 4
        "amc23               -    25.0       -       -  -",
        "gsm8k            70.0       -       -       -  -",
        "average of 2     25.0    25.0    +0.0    ±6.9  no",
    ]


def test_load_result_reads_result_files_and_single_benchmark_files(tmp_path):
    path = save_result(build_result([A, B], "m", "s"), tmp_path / "r.json")
    assert set(load_result(path)["benchmarks"]) == {"aime24", "math500"}
    single = tmp_path / "aime24.json"  # what --run.out_dir writes per benchmark
    single.write_text(json.dumps({**A, "model": "m"}))
    assert list(load_result(single)["benchmarks"]) == ["aime24"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--compare {path}: no such file"),
        ("not json", "--compare {path} is not an r1zero eval result"),
        ('{"step": 3, "loss": 0.1}', "--compare {path} is not an r1zero eval result"),
        ("[1, 2]", "--compare {path} is not an r1zero eval result"),
        (json.dumps({"format": FORMAT, "benchmarks": [1]}), "its 'benchmarks' is not a mapping"),
    ],
)
def test_a_bad_compare_file_is_one_line_naming_it_before_any_model_loads(
    tmp_path, monkeypatch, capsys, content, message
):
    from r1zero.eval import harness

    monkeypatch.setattr(harness, "_load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    path = tmp_path / "previous.json"
    if content is not None:
        path.write_text(content)
    assert main(["--model.name", "tiny-base", "--benchmarks", "list_sum", "--compare", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("r1zero eval: ")
    assert message.format(path=path) in err


# ---------------------------------------------------------------- end to end on a random tiny model
QUIET = ["--n", "2", "--rollout.max_new_tokens", "4", "--limit", "2", "--reward.workers", "0"]
QUIET += ["--run.progress", "false", "--run.threads", "1"]


def test_eval_saves_beside_a_model_dir_never_replaces_and_compares(tmp_path, capsys):
    model = write_random_model(tmp_path / "model")
    argv = ["--model.name", str(model), "--benchmarks", "list_sum,countdown", *QUIET]
    assert main(argv) == 0
    out = capsys.readouterr().out
    first = model / "eval" / "list_sum+countdown.result.json"
    assert f"results: {first}\n" in out
    assert next(line for line in out.splitlines() if line.startswith("average ")).split()[1] == "4"
    saved = json.loads(first.read_text())
    assert saved["format"] == FORMAT and set(saved["benchmarks"]) == {"list_sum", "countdown"}
    means = [saved["benchmarks"][b]["pass@1"] for b in ("list_sum", "countdown")]
    assert saved["average"]["pass@1"] == pytest.approx(sum(means) / 2)
    assert main([*argv, "--compare", str(first)]) == 0  # the same settings and seed: the same numbers
    out = capsys.readouterr().out
    second = model / "eval" / "list_sum+countdown-2.result.json"
    assert f"results: {second} ({first} already exists and is kept)" in out
    assert json.loads(first.read_text()) == saved
    table = out.split("previous vs this: ")[1].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["list_sum", "countdown", "average"]
    assert all(line.split()[3] == "+0.0" for line in table[2:5])


def test_eval_of_a_run_saves_one_file_per_new_step_under_the_run(tmp_path, capsys):
    model = write_random_model(tmp_path / "model")
    run = write_synthetic_run(tmp_path / "run", steps=2, checkpoints=(2,))
    (run / "eval.jsonl").unlink()
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = str(model)
    (run / "config.json").write_text(json.dumps(config))
    assert main(["--run", str(run), "--benchmarks", "list_sum", *QUIET]) == 0
    out = capsys.readouterr().out
    files = sorted(p.name for p in (run / "eval").glob("*.json"))
    assert files == ["list_sum-step000000.result.json", "list_sum-step000002.result.json"]
    assert f"results: {run / 'eval' / 'list_sum-step000002.result.json'}" in out
    step2 = json.loads((run / "eval" / "list_sum-step000002.result.json").read_text())
    assert (step2["step"], step2["run_dir"], list(step2["benchmarks"])) == (2, str(run), ["list_sum"])
    # a second benchmark later: the step's file holds both, the earlier line filling in, with their average
    assert main(["--run", str(run), "--benchmarks", "list_sum,countdown", *QUIET]) == 0
    out = capsys.readouterr().out
    both = json.loads((run / "eval" / "list_sum+countdown-step000002.result.json").read_text())
    assert list(both["benchmarks"]) == ["list_sum", "countdown"] and "average" in both
    assert "average@2" in out and "average@0" in out


def test_out_dir_holds_the_result_file_beside_the_per_benchmark_files(tmp_path, capsys):
    model, out = write_random_model(tmp_path / "model"), tmp_path / "out"
    assert (
        main(["--model.name", str(model), "--benchmarks", "list_sum", "--run.out_dir", str(out), *QUIET]) == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["list_sum.json", "list_sum.result.json", "list_sum.samples.jsonl"]
    assert f"results: {out / 'list_sum.result.json'}" in capsys.readouterr().out
    assert not (model / "eval").exists()


def test_save_false_writes_no_result_file(tmp_path, capsys):
    model = write_random_model(tmp_path / "model")
    assert main(["--model.name", str(model), "--benchmarks", "list_sum", "--run.save", "false", *QUIET]) == 0
    assert "results:" not in capsys.readouterr().out and not (model / "eval").exists()


def test_a_result_that_cannot_be_saved_still_prints_and_says_why(tmp_path, monkeypatch, capsys):
    from r1zero.eval import cli

    def refuse(result, path):
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")

    monkeypatch.setattr(cli, "save_result", refuse)
    model = write_random_model(tmp_path / "model")
    assert main(["--model.name", str(model), "--benchmarks", "list_sum", *QUIET]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("benchmark ") and "results:" not in captured.out
    assert "r1zero eval: could not save the results: [Errno 13] Permission denied" in captured.err

"""`r1zero eval` end to end on a random tiny Llama (real tokenizer, real engines, real verifiers)."""

import json

import pytest

from r1zero.eval.cli import main
from r1zero.eval.config import eval_config
from r1zero.eval.harness import completed_steps, evaluate_run, list_checkpoints

from .fixtures import write_benchmark_dir, write_random_model, write_synthetic_run

FAST = [
    "--n",
    "3",
    "--rollout.temperature",
    "1.0",
    "--rollout.top_p",
    "1.0",
    "--rollout.max_new_tokens",
    "12",
    "--reward.workers",
    "0",
    "--run.progress",
    "false",
    "--run.threads",
    "1",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("model") / "m")


def test_eval_model_writes_results_and_samples(model_dir, tmp_path, capsys):
    data = write_benchmark_dir(tmp_path / "bench")
    out = tmp_path / "out"
    rc = main(
        [
            "--model.name",
            str(model_dir),
            "--benchmarks",
            "math500,gsm8k,list_sum",
            "--data-dir",
            str(data),
            "--limit",
            "2",
            "--run.out_dir",
            str(out),
            "--data.template",
            "r1zero",
            *FAST,
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "math500" in table and "gsm8k" in table and "list_sum" in table and "pass@1" in table
    for name in ("math500", "gsm8k", "list_sum"):
        result = json.loads((out / f"{name}.json").read_text())
        assert result["problems"] == 2 and result["n"] == 3
        for key in (
            "pass@1",
            "pass@1_ci",
            "pass@2",
            "pass@3",
            "maj@3",
            "format_rate",
            "length/mean",
            "length/p90",
            "length/clip_ratio",
            "reflection/per_response",
            "reflection/per_1k_tokens",
        ):
            assert key in result, key
        assert result["settings"]["temperature"] == 1.0 and result["settings"]["max_new_tokens"] == 12
        assert result["template"]["name"] == "r1zero" and "<answer>" in result["template"]["text"]
        assert result["model"] == str(model_dir) and "torch" in result["versions"]
        rows = [json.loads(line) for line in (out / f"{name}.samples.jsonl").read_text().splitlines()]
        assert len(rows) == 6
        assert {"prompt", "completion", "correct", "reason", "length", "reflection_hits"} <= set(rows[0])
        assert all(1 <= r["length"] <= 12 for r in rows)
        # the per-sample records and the summary agree
        assert result["pass@1"] == pytest.approx(sum(r["correct"] for r in rows) / 6)
        assert result["length/clip_ratio"] == pytest.approx(sum(r["truncated"] for r in rows) / 6)


def test_greedy_is_deterministic(model_dir, tmp_path):
    args = [
        "--model.name",
        str(model_dir),
        "--benchmarks",
        "list_sum",
        "--limit",
        "3",
        "--rollout.temperature",
        "0",
        "--rollout.max_new_tokens",
        "8",
        "--reward.workers",
        "0",
        "--run.progress",
        "false",
    ]
    assert main([*args, "--run.out_dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--run.out_dir", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "list_sum.samples.jsonl").read_text()
    assert a == (tmp_path / "b" / "list_sum.samples.jsonl").read_text()
    assert len(a.splitlines()) == 3  # greedy: n forced to 1


def test_missing_benchmark_file_names_the_flag(model_dir, tmp_path, capsys):
    assert (
        main(["--model.name", str(model_dir), "--benchmarks", "aime24", "--data-dir", str(tmp_path), *FAST])
        == 2
    )
    assert "--data-dir" in capsys.readouterr().err


def test_unknown_benchmark_lists_valid(model_dir, capsys):
    assert main(["--model.name", str(model_dir), "--benchmarks", "nope", *FAST]) == 2
    assert "valid: gsm8k" in capsys.readouterr().err


def test_suite_file_and_override(model_dir, tmp_path, capsys):
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps({"benchmarks": ["list_sum"], "n": 2, "max_new_tokens": 6, "limit": 2}))
    out = tmp_path / "out"
    assert (
        main(
            [
                "--model.name",
                str(model_dir),
                "--suite",
                str(suite),
                "--n",
                "3",
                "--run.out_dir",
                str(out),
                "--reward.workers",
                "0",
                "--run.progress",
                "false",
            ]
        )
        == 0
    )
    result = json.loads((out / "list_sum.json").read_text())
    assert result["n"] == 3 and result["settings"]["max_new_tokens"] == 6
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"benchmarks": ["list_sum"], "temprature": 1}))
    assert main(["--model.name", str(model_dir), "--suite", str(bad)]) == 2
    assert "temprature" in capsys.readouterr().err


RUN_ARGS = ["--benchmarks", "list_sum", "--n", "2", "--rollout.max_new_tokens", "6", "--limit", "2"]
RUN_ARGS += ["--reward.workers", "0", "--run.progress", "false"]


def test_eval_run_covers_step0_and_checkpoints_and_skips_done(model_dir, tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run", steps=4, checkpoints=(2, 4))
    (run / "eval.jsonl").unlink()
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = str(model_dir)
    (run / "config.json").write_text(json.dumps(config))
    assert sorted(list_checkpoints(run)) == [2, 4]
    cfg = eval_config(RUN_ARGS)
    lines = evaluate_run(run, cfg)
    assert [line["step"] for line in lines] == [0, 2, 4]
    assert completed_steps(run, "list_sum") == {0, 2, 4}
    assert (run / "eval" / "step_000002" / "list_sum.json").is_file()
    # a new checkpoint: only it is evaluated; the old lines stay
    write_random_model(run / "checkpoints" / "step_000006", seed=6)
    lines = evaluate_run(run, cfg)
    assert [line["step"] for line in lines] == [6]
    rows = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    assert all(
        {"pass@1", "pass@1_ci", "format_rate", "length/mean", "reflection/per_response"} <= set(r)
        for r in rows
    )
    # through the CLI, nothing is left to do
    assert main(["--run", str(run), *RUN_ARGS]) == 0
    assert (
        "already evaluated on list_sum with these settings; --force re-runs them" in capsys.readouterr().out
    )


def test_run_eval_uses_the_runs_template_and_cap(model_dir, tmp_path):
    run = write_synthetic_run(tmp_path / "run", steps=2)
    (run / "eval.jsonl").unlink()
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = str(model_dir)
    config["data"].update({"template": "tiny-demo", "think_prefix": True})
    config["rollout"].update({"stop": ["</answer>"], "max_new_tokens": 7})
    (run / "config.json").write_text(json.dumps(config))
    assert (
        main(
            [
                "--run",
                str(run),
                "--benchmarks",
                "list_sum",
                "--limit",
                "2",
                "--n",
                "2",
                "--reward.workers",
                "0",
                "--run.progress",
                "false",
            ]
        )
        == 0
    )
    (line,) = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert line["step"] == 0 and line["template"] == "tiny-demo" and line["max_new_tokens"] == 7
    result = json.loads((run / "eval" / "step_000000" / "list_sum.json").read_text())
    from r1zero.models.tiny import DEMO_TEMPLATE, render_demo_prompt

    assert result["template"]["text"] == DEMO_TEMPLATE
    first = json.loads((run / "eval" / "step_000000" / "list_sum.samples.jsonl").open().readline())
    assert first["prompt"].startswith(render_demo_prompt("What is")[:20]) and "<think>" in first["prompt"]
    assert all(
        r["length"] <= 7
        for r in map(json.loads, (run / "eval" / "step_000000" / "list_sum.samples.jsonl").open())
    )


def test_evaluate_policy_in_memory(model_dir):
    from r1zero.eval.harness import evaluate_policy
    from r1zero.models.loading import load_policy

    model, tokenizer = load_policy(str(model_dir))
    argv = ["--benchmarks", "list_sum", "--n", "2", "--rollout.max_new_tokens", "5", "--limit", "3"]
    cfg = eval_config([*argv, "--reward.workers", "0", "--rollout.backend", "fast"])
    out = evaluate_policy(model, tokenizer, cfg)
    assert out["list_sum"]["problems"] == 3 and out["list_sum"]["n"] == 2
    assert out["list_sum"]["length/max"] <= 5


@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_prompts_longer_than_the_context_are_scored_not_fatal(backend, caplog):
    from r1zero.data.problem import Problem
    from r1zero.eval.harness import evaluate_problems
    from r1zero.rollout import build_engine
    from tests.rollout.fixtures import char_tokenizer, tiny_llama

    tokenizer = char_tokenizer()
    engine = build_engine(backend, tiny_llama(max_position_embeddings=64), tokenizer)
    problems = [
        Problem("short", "1+1?", "2", "integer", {}),
        Problem("long", "add these: " + "1+" * 40 + "1", "41", "integer", {}),  # > 64 tokens alone
    ]
    cfg = eval_config(
        ["--benchmarks", "list_sum", *FAST, "--rollout.max_new_tokens", "48", "--data.template", "none"]
    )
    _, records, _ = evaluate_problems(engine, problems, cfg, tokenizer)
    short, long = records
    assert len(short) == len(long) == 3
    assert all(r.length == 0 and r.truncated and not r.correct for r in long)
    assert all(0 < r.length <= 64 - 6 for r in short)  # the short prompt's completions fit the context
    assert "fill the context alone" in caplog.text

"""Suites that reproduce a paper's evaluation: their settings, their published figures, "paper vs this
checkpoint", and the vLLM options a GPU user sets."""

import json
from pathlib import Path

import pytest

from r1zero.eval import harness
from r1zero.eval.cli import main
from r1zero.eval.config import eval_config, vllm_options
from r1zero.eval.paper import Paper, load_paper, paper_table, parse_paper, pick_row

from .fixtures import write_random_model

SUITES = Path(__file__).resolve().parents[2] / "eval"

# suite -> (n, temperature, top_p, max_new_tokens, template, a model row and one of its figures)
PROTOCOLS = {
    "oat-zero": (1, 0.0, 1.0, 3000, "qwen-math", "sail/Qwen2.5-Math-7B-Oat-Zero", "aime24", 43.3),
    "simplerl-zoo": (
        1,
        1.0,
        0.95,
        16000,
        "qwen-math",
        "hkust-nlp/Qwen-2.5-Math-7B-SimpleRL-Zoo",
        "average",
        59.5,
    ),
    "simplerl-zoo-aime": (
        32,
        1.0,
        0.95,
        16000,
        "qwen-math",
        "hkust-nlp/Qwen-2.5-7B-SimpleRL-Zoo",
        "aime24",
        15.6,
    ),
    "dapo": (32, 1.0, 0.7, 20480, "qwen-math", "BytedTsinghua-SIA/DAPO-Qwen-32B", "aime24", 50.0),
    "r1-style": (64, 0.6, 0.95, 32768, "chat", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "aime24", 28.9),
}


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.json")), ids=lambda p: p.stem)
def test_every_suite_file_loads_and_validates(path):
    cfg = eval_config([], str(path))
    assert cfg.benchmarks
    paper = load_paper(path)
    if paper is not None:  # every row's average is the mean of its other figures, as printed (0.1)
        for row, figures in paper.models.items():
            others = [v for k, v in figures.items() if k != "average"]
            if "average" in figures:
                assert abs(sum(others) / len(others) - figures["average"]) <= 0.06, row


@pytest.mark.parametrize("suite", PROTOCOLS)
def test_protocol_suites_carry_the_papers_settings_and_figures(suite):
    n, temperature, top_p, tokens, template, row, benchmark, figure = PROTOCOLS[suite]
    cfg = eval_config([], suite if Path("eval", f"{suite}.json").is_file() else str(SUITES / f"{suite}.json"))
    r = cfg.rollout
    assert (cfg.n, r.temperature, r.top_p, r.max_new_tokens, cfg.data.template) == (
        n,
        temperature,
        top_p,
        tokens,
        template,
    )
    paper = load_paper(SUITES / f"{suite}.json")
    assert paper.citation.startswith("https://") and paper.metric == "pass@1"
    assert paper.models[row][benchmark] == figure


def test_simplerl_zoo_has_the_four_published_base_to_rl_averages():
    paper = load_paper(SUITES / "simplerl-zoo.json")
    pairs = {
        "0.5B": ("Qwen/Qwen2.5-0.5B", "hkust-nlp/Qwen-2.5-0.5B-SimpleRL-Zoo", 12.1, 20.9),
        "1.5B": ("Qwen/Qwen2.5-1.5B", "hkust-nlp/Qwen-2.5-1.5B-SimpleRL-Zoo", 18.5, 36.1),
        "7B": ("Qwen/Qwen2.5-7B", "hkust-nlp/Qwen-2.5-7B-SimpleRL-Zoo", 40.3, 55.2),
        "Math-7B": ("Qwen/Qwen2.5-Math-7B", "hkust-nlp/Qwen-2.5-Math-7B-SimpleRL-Zoo", 37.2, 59.5),
    }
    for base, rl, before, after in pairs.values():
        assert (paper.models[base]["average"], paper.models[rl]["average"]) == (before, after)


# ---------------------------------------------------------------- paper vs this checkpoint (pure)
PAPER = Paper(
    "Oat", "https://arxiv.org/abs/2503.20783", {"oat": {"aime24": 43.3, "amc23": 62.7, "average": 53.0}}
)


def _result(benchmark, value, low, high, **extra):
    return {"benchmark": benchmark, "n": 4, "pass@1": value, "pass@1_ci": [low, high], **extra}


def test_paper_table_golden():
    results = [
        _result("aime24", 0.25, 0.1, 0.4),
        _result("amc23", 0.7, 0.55, 0.85),
        _result("gsm8k", 0.9, 0.8, 1),
    ]
    assert paper_table(results, PAPER, "oat").splitlines() == [
        "paper vs this checkpoint: oat, Oat (https://arxiv.org/abs/2503.20783); pass@1 in %",
        "benchmark        paper    this  95% CI            diff  in CI",
        "aime24            43.3    25.0  [10.0, 40.0]     -18.3  no",
        "amc23             62.7    70.0  [55.0, 85.0]      +7.3  yes",
        "average           53.0    47.5  -                 -5.5  -",
    ]


def test_paper_table_per_step_and_missing_benchmarks():
    results = [_result("aime24", 0.5, 0.3, 0.7, step=0), _result("aime24", 0.4, 0.2, 0.6, step=10)]
    lines = paper_table(results, PAPER, "oat").splitlines()[2:]
    assert [line.split()[0] for line in lines] == [
        "aime24@0",
        "amc23@0",
        "average@0",
        "aime24@10",
        "amc23@10",
        "average@10",
    ]
    assert "not run" in lines[1] and lines[2].split()[1:3] == ["53.0", "-"]  # no average over a missing one


def test_paper_table_prints_the_note():
    paper = Paper("t", "https://x", {"m": {"aime24": 10.0}}, note="greedy, 3,000 tokens")
    assert paper_table([_result("aime24", 0.1, 0.0, 0.2)], paper, "m").endswith(
        "paper's protocol: greedy, 3,000 tokens"
    )


@pytest.mark.parametrize(
    ("model", "wanted", "row"),
    [
        ("Qwen/Qwen2.5-Math-7B", "", "Qwen/Qwen2.5-Math-7B"),
        ("/ckpt/QWEN2.5-MATH-7B/", "", "Qwen/Qwen2.5-Math-7B"),
        ("runs/x/final", "", None),
        ("runs/x/final", "org/RL-7B", "org/RL-7B"),
    ],
)
def test_pick_row(model, wanted, row):
    paper = Paper("t", "u", {"Qwen/Qwen2.5-Math-7B": {"aime24": 1.0}, "org/RL-7B": {"aime24": 2.0}})
    assert pick_row(paper, model, wanted) == row


def test_pick_row_single_row_and_unknown_name():
    assert pick_row(PAPER, "anything") == "oat"
    with pytest.raises(ValueError, match="paper_model 'nope' is not in the suite's paper; valid: oat"):
        pick_row(PAPER, "anything", "nope")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"title": "t", "citation": "u", "models": {"m": {"aime24": 1}}, "year": 1}, "unknown key 'year'"),
        ({"title": "t", "models": {"m": {"aime24": 1}}}, "paper.citation must be a non-empty string"),
        ({"title": "t", "citation": "u", "models": {}}, "paper.models must map model names"),
        (
            {"title": "t", "citation": "u", "models": {"m": {"aime24": 143}}},
            r"percentage in \[0, 100\]; got 143",
        ),
        ({"title": "t", "citation": "u", "models": {"m": {"aime24": "43"}}}, "percentage"),
        (
            {"title": "t", "citation": "u", "models": {"m": {"math": 4}}},
            "'math' is not a benchmark of this suite",
        ),
    ],
)
def test_bad_paper_blocks_name_the_key(block, message):
    with pytest.raises(ValueError, match=message):
        parse_paper(block, ["aime24"])


# ---------------------------------------------------------------- end to end on the CPU
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("model") / "tiny-random")


def _suite(tmp_path, paper):
    path = tmp_path / "suite.json"
    body = {"benchmarks": ["list_sum"], "n": 2, "limit": 3, "rollout": {"max_new_tokens": 4}, "paper": paper}
    path.write_text(json.dumps(body))
    return path


QUIET = ["--reward.workers", "0", "--run.progress", "false", "--run.threads", "1"]


def test_eval_prints_paper_vs_this_checkpoint(model_dir, tmp_path, capsys):
    paper = {
        "title": "A paper",
        "citation": "https://example.org/p",
        "models": {"tiny-random": {"list_sum": 12.5}},
    }
    assert main(["--suite", str(_suite(tmp_path, paper)), "--model.name", str(model_dir), *QUIET]) == 0
    out = capsys.readouterr().out
    assert "paper vs this checkpoint: tiny-random, A paper (https://example.org/p); pass@1 in %" in out
    compared = out.split("paper vs this checkpoint")[1]
    row = next(line for line in compared.splitlines() if line.startswith("list_sum "))
    assert row.split()[1] == "12.5"


def test_a_bad_paper_block_fails_before_any_model_loads(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(harness, "evaluate_model", lambda *a, **k: pytest.fail("evaluated"))
    paper = {"title": "A paper", "citation": "https://example.org/p", "models": {"x": {"gsm8k": 1.0}}}
    assert main(["--suite", str(_suite(tmp_path, paper)), "--model.name", str(model_dir)]) == 2
    assert "'gsm8k' is not a benchmark of this suite" in capsys.readouterr().err
    paper["models"] = {"x": {"list_sum": 1.0}}
    argv = ["--suite", str(_suite(tmp_path, paper)), "--model.name", str(model_dir), "--paper_model", "y"]
    assert main(argv) == 2
    assert "paper_model 'y' is not in the suite's paper; valid: x" in capsys.readouterr().err


def test_several_rows_and_no_match_prints_no_comparison(model_dir, tmp_path, capsys):
    paper = {
        "title": "P",
        "citation": "https://e.org",
        "models": {"a": {"list_sum": 1.0}, "b": {"list_sum": 2.0}},
    }
    assert main(["--suite", str(_suite(tmp_path, paper)), "--model.name", str(model_dir), *QUIET]) == 0
    assert "paper vs this checkpoint" not in capsys.readouterr().out
    argv = [
        "--suite",
        str(_suite(tmp_path, paper)),
        "--model.name",
        str(model_dir),
        "--paper_model",
        "b",
        *QUIET,
    ]
    assert main(argv) == 0
    assert "paper vs this checkpoint: b, P" in capsys.readouterr().out


# ---------------------------------------------------------------- vLLM options (no vLLM needed)
VLLM_ARGV = [
    "--rollout.backend",
    "vllm",
    "--model.dtype",
    "bfloat16",
    "--rollout.tensor_parallel",
    "4",
    "--rollout.gpu_memory_utilization",
    "0.85",
    "--rollout.max_model_len",
    "20000",
    "--run.seed",
    "7",
]


def test_vllm_options_parse_into_the_engine_keywords():
    assert vllm_options(eval_config(VLLM_ARGV)) == {
        "dtype": "bfloat16",
        "tensor_parallel_size": 4,
        "gpu_memory_utilization": 0.85,
        "max_model_len": 20000,
        "sleep": False,
        "seed": 7,
    }
    assert vllm_options(eval_config([]))["max_model_len"] is None  # 0: the model's own context


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rollout.gpu_memory_utilization", "1.5"], r"rollout.gpu_memory_utilization must be in \(0, 1\]"),
        (["--rollout.tensor_parallel", "0"], "rollout.tensor_parallel must be >= 1"),
        (["--rollout.max_model_len", "-1"], "rollout.max_model_len must be >= 0"),
    ],
)
def test_vllm_options_are_checked(argv, message):
    with pytest.raises(ValueError, match=message):
        eval_config(argv)


def test_vllm_eval_hands_the_options_and_the_path_to_the_engine(model_dir, monkeypatch):
    """The weights are vLLM's to load: no transformers model is built, the engine gets the directory."""
    import r1zero.rollout

    seen = {}

    class Built(Exception):
        pass

    def build_engine(backend, model, tokenizer, **options):
        seen.update(backend=backend, model=model, tokenizer=tokenizer, **options)
        raise Built

    monkeypatch.setattr(r1zero.rollout, "build_engine", build_engine)
    monkeypatch.setattr(harness, "_load_model", lambda *a, **k: pytest.fail("loaded a transformers model"))
    cfg = eval_config([*VLLM_ARGV, "--benchmarks", "list_sum"])
    with pytest.raises(Built):
        harness.evaluate_model(str(model_dir), cfg)
    assert seen["backend"] == "vllm" and seen["model"] is None and seen["tokenizer"] is not None
    assert seen["model_path"] == str(model_dir)
    assert {k: seen[k] for k in vllm_options(cfg)} == vllm_options(cfg)


def test_the_engine_is_closed_after_each_model(model_dir, monkeypatch):
    """vLLM holds its GPU memory until shut down; evaluating a run loads one engine per checkpoint."""
    closed = []
    real = harness.make_engine

    def make_engine(*args, **kwargs):
        engine = real(*args, **kwargs)
        engine.close = lambda: closed.append(engine.name)
        return engine

    monkeypatch.setattr(harness, "make_engine", make_engine)
    cfg = eval_config(
        [*QUIET, "--benchmarks", "list_sum", "--limit", "2", "--n", "1", "--rollout.max_new_tokens", "4"]
    )
    results = harness.evaluate_model(str(model_dir), cfg)
    assert [r["benchmark"] for r in results] == ["list_sum"] and len(closed) == 1

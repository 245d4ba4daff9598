"""Benchmark names and data: the shipped files of data/benchmarks/ load with no data directory given,
every gold is one the verifier can read, Minerva (not shipped) is skipped in a suite and explained alone,
and names are checked up front. Reads only the repository's data/ folder and tmp_path."""

import hashlib
import json
import logging

import pytest

from r1zero.eval import benchmarks
from r1zero.eval.benchmarks import (
    BENCHMARKS,
    REPO_DATA_DIR,
    data_dirs,
    find_benchmark_file,
    get_benchmark,
    load_benchmark,
    runnable_benchmarks,
    validate_benchmarks,
)
from r1zero.verifiers.builtin.math import gold_readable

# benchmark -> rows of its shipped file (data/benchmarks/LICENSES.md)
SHIPPED = {"gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40, "olympiadbench": 675}
# Upstream data defects, kept as shipped (LICENSES.md, "Known defect"): golds the verifier cannot read.
UNREADABLE_GOLDS = {"olympiadbench-2045": "t(0,4]"}
HELDOUT_SHA256 = "58047107390382f92f7b65b8d00e50df255ff9c4e17a5bf99ffb9a40ae993aff"


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    """No data directory but an empty one: no env var, no checkout data, an empty working directory."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv(benchmarks.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(benchmarks, "REPO_DATA_DIR", empty)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the hub fallback fails at once
    return empty


@pytest.fixture
def repo_data_only(tmp_path, monkeypatch):
    monkeypatch.delenv(benchmarks.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("name", "rows"), sorted(SHIPPED.items()))
def test_shipped_file_loads_with_no_data_dir(name, rows, repo_data_only):
    bench = get_benchmark(name)
    assert find_benchmark_file(bench) == REPO_DATA_DIR / bench.file
    problems = load_benchmark(bench)
    assert len(problems) == rows
    assert len({p.id for p in problems}) == rows
    assert all(p.verifier == "math" and p.question.strip() for p in problems)
    unreadable = {p.id: p.answer for p in problems if not gold_readable(p.answer)}
    assert unreadable == {k: v for k, v in UNREADABLE_GOLDS.items() if k.startswith(name)}


def test_only_licensed_files_are_shipped():
    """Minerva (CC BY-NC-SA) and training sets stay out; LICENSES.md covers every shipped file."""
    files = {p.name for p in REPO_DATA_DIR.glob("*.jsonl")}
    assert files == {get_benchmark(name).file for name in SHIPPED}
    licences = (REPO_DATA_DIR / "LICENSES.md").read_text(encoding="utf-8")
    assert all(name in licences for name in files)
    assert "## Not shipped: Minerva Math" in licences and "math-ai/minervamath" in licences


def test_explicit_dir_wins_over_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert data_dirs(tmp_path) == [tmp_path]
    assert find_benchmark_file(get_benchmark("gsm8k"), tmp_path) is None
    with pytest.raises(ValueError, match=r"gsm8k_test\.jsonl' not found in --data-dir"):
        load_benchmark(get_benchmark("gsm8k"), tmp_path)


def test_env_dir_is_searched_first_file_by_file(tmp_path, monkeypatch):
    own = tmp_path / "own"
    own.mkdir()
    (own / "aime24_test.jsonl").write_text(json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n")
    monkeypatch.setenv(benchmarks.DATA_DIR_ENV, str(own))
    monkeypatch.chdir(tmp_path)
    assert [p.answer for p in load_benchmark(get_benchmark("aime24"))] == ["2"]
    assert find_benchmark_file(get_benchmark("gsm8k")) == REPO_DATA_DIR / "gsm8k_test.jsonl"
    monkeypatch.setenv(benchmarks.DATA_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"R1ZERO_DATA_DIR=.*missing.* is not a directory"):
        data_dirs()


def test_minerva_alias_and_its_file(tmp_path):
    assert get_benchmark("minerva_math") is BENCHMARKS["minerva"]
    row = {"id": "minerva-000", "problem": "Speed of light in m/s?", "answer": "3 \\times 10^{8}"}
    (tmp_path / "minerva_math_test.jsonl").write_text(json.dumps(row) + "\n")
    assert runnable_benchmarks(["gsm8k", "minerva_math"], tmp_path) == ["gsm8k", "minerva"]
    assert [p.id for p in load_benchmark(get_benchmark("minerva_math"), tmp_path)] == ["minerva-000"]


def test_suite_skips_missing_minerva_with_a_warning(no_local_data, caplog):
    suite = json.loads((REPO_DATA_DIR.parents[1] / "eval" / "math6.json").read_text())["benchmarks"]
    with caplog.at_level(logging.WARNING, logger="r1zero.eval.benchmarks"):
        kept = runnable_benchmarks(suite)
    assert kept == [name for name in suite if name != "minerva"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipping minerva: minerva_math_test.jsonl not found" in warning
    assert "CC BY-NC-SA" in warning and "LICENSES.md" in warning and "R1ZERO_DATA_DIR" in warning


def test_minerva_alone_fails_in_one_line_naming_the_file(no_local_data):
    assert runnable_benchmarks(["minerva"]) == ["minerva"]  # kept: the error below explains it
    with pytest.raises(ValueError) as info:
        load_benchmark(get_benchmark("minerva"))
    message = str(info.value)
    assert "\n" not in message
    assert "minerva_math_test.jsonl not found" in message and "LICENSES.md" in message


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ["gsm8k", "math50"],
            r"unknown benchmark 'math50' \(did you mean 'math500'\?\); valid: gsm8k, math500",
        ),
        (["minerva-math"], r"did you mean 'minerva_math'\?"),
        (["olympiad_bench"], r"did you mean 'olympiadbench'\?"),
        (["zzz"], r"unknown benchmark 'zzz'; valid: .*minerva_math.* or a task generator \(.*list_sum"),
        ("gsm8k", "must be a list"),
    ],
)
def test_validate_names_the_bad_one(names, message):
    with pytest.raises(ValueError, match=message):
        validate_benchmarks(names)


def test_validate_returns_canonical_names():
    names = [" gsm8k", "minerva_math", "minerva", "countdown", "list_sum"]
    assert validate_benchmarks(names) == ["gsm8k", "minerva", "countdown", "list_sum"]


def test_demo_heldout_set_is_frozen():
    """The generator still draws eval/demo.json's 128 problems byte for byte as data/heldout/ keeps them."""
    frozen = REPO_DATA_DIR.parents[0] / "heldout" / "list_sum.jsonl"
    assert hashlib.sha256(frozen.read_bytes()).hexdigest() == HELDOUT_SHA256
    demo = json.loads((REPO_DATA_DIR.parents[1] / "eval" / "demo.json").read_text())
    problems = load_benchmark(get_benchmark(demo["benchmarks"][0]), limit=demo["limit"])
    rows = [json.loads(line) for line in frozen.read_text().splitlines()]
    assert [(p.id, p.question, p.answer) for p in problems] == [
        (r["id"], r["question"], r["answer"]) for r in rows
    ]

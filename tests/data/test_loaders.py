import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1zero.data import DataError, Problem, generate, load_file, load_problems, write_problems
from r1zero.data.answers import _DAPO_PREFIX, _DAPO_SUFFIX

from .conftest import BENCHMARK_ROWS, write_jsonl

# ---------------------------------------------------------------- every format


@pytest.mark.parametrize("name", sorted(BENCHMARK_ROWS))
def test_benchmark_jsonl_shapes(benchmark_dir, name):
    problems = load_problems(benchmark_dir / name)
    rows = BENCHMARK_ROWS[name]
    assert [p.id for p in problems] == [r["id"] for r in rows]
    assert [p.question for p in problems] == [r["problem"] for r in rows]
    assert [p.answer for p in problems] == [r["answer"] for r in rows]
    assert all(p.verifier == "math" for p in problems)
    for p, r in zip(problems, rows, strict=True):
        assert {k: v for k, v in r.items() if k not in ("id", "problem", "answer")} == p.meta
        assert "problem" not in p.meta and "answer" not in p.meta


def test_json_list_csv_and_parquet_with_column_mapping(tmp_path):
    rows = [
        {"uid": f"q{i}", "prompt_text": f"What is {i}+{i}?", "gold": str(2 * i), "level": i}
        for i in range(1, 4)
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with (tmp_path / "a.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for suffix in ("json", "csv", "parquet"):
        problems = load_problems(
            tmp_path / f"a.{suffix}", question="prompt_text", id="uid", verifier="integer"
        )
        assert [p.id for p in problems] == ["q1", "q2", "q3"], suffix
        assert [p.question for p in problems] == ["What is 1+1?", "What is 2+2?", "What is 3+3?"]
        assert [p.answer for p in problems] == ["2", "4", "6"]  # "gold" found by name
        assert {p.verifier for p in problems} == {"integer"}
        assert problems[0].meta["level"] == (1 if suffix != "csv" else "1")
        assert problems[0].meta["source"] == str(tmp_path / f"a.{suffix}")


def test_generated_ids_and_row_verifier_column(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"question": "1+1", "answer": "2", "verifier": "integer"},
            {"question": "Solve x^2=4, x>0", "answer": "2"},
        ],
    )
    problems = load_problems(path)
    assert [p.id for p in problems] == ["mixed-00001", "mixed-00002"]
    assert [p.verifier for p in problems] == ["integer", "math"]


def test_round_trip_of_written_problems(tmp_path):
    extra = Problem("x", "Q", "\\frac{1}{2}", "math", {"k": [1, 2], "source": "hand"})
    problems = [*generate("countdown", 30, seed=4), extra]
    path = write_problems(problems, tmp_path / "out.jsonl")
    assert load_problems(path) == problems


def test_problem_fields_must_be_strings():
    with pytest.raises(DataError, match=r"Problem\.answer must be a string, got int 7"):
        Problem("a", "q", 7, "integer")
    with pytest.raises(DataError, match=r"Problem\.meta must be a dict"):
        Problem("a", "q", "7", "integer", meta=None)


# ---------------------------------------------------------------- answer rules and dataset specs on local files


def test_gsm8k_original_shape_with_spec(tmp_path):
    path = write_jsonl(
        tmp_path / "gsm8k_raw.jsonl",
        [
            {"question": "Q1", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
            {"question": "Q2", "answer": "so 1,200 * 2 = 2,400\n#### 2,400"},
        ],
    )
    assert [p.answer for p in load_problems(path, spec="gsm8k")] == ["7", "2400"]
    assert [p.answer for p in load_problems(path, answer_rule="after_hashes")] == ["7", "2400"]


def test_math_solution_last_boxed(tmp_path):
    path = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "P", "solution": "First \\boxed{1}, then $\\boxed{\\frac{a}{b^{2}}}$."},
            {"problem": "P2", "solution": "Answer: $\\boxed{\\text{(C)}}$"},
        ],
    )
    problems = load_problems(path, spec="math")
    assert [p.answer for p in problems] == ["\\frac{a}{b^{2}}", "\\text{(C)}"]
    with pytest.raises(DataError, match=r"row 1, column 'solution': gold answer: no \\boxed"):
        load_problems(
            write_jsonl(tmp_path / "nobox.jsonl", [{"problem": "P", "solution": "42"}]), spec="math"
        )


def test_amc_float_answers_and_olympiad_lists(tmp_path):
    amc = tmp_path / "amc.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"question": "Q", "answer": 27.0}, {"question": "R", "answer": 2.5}]), amc
    )
    assert [p.answer for p in load_problems(amc, spec="amc23")] == ["27", "2.5"]
    olympiad = write_jsonl(tmp_path / "ob.jsonl", [{"question": "Q", "final_answer": ["$(1,2)$", "$3$"]}])
    assert load_problems(olympiad, spec="olympiadbench")[0].answer == "(1,2), 3"


def test_dapo_nested_fields_and_prompt_stripping(tmp_path):
    row = {
        "prompt": [{"role": "user", "content": _DAPO_PREFIX + "What is 6*7?" + _DAPO_SUFFIX}],
        "reward_model": {"ground_truth": "42", "style": "rule-lighteval/MATH_v2"},
        "data_source": "math_dapo",
    }
    path = tmp_path / "dapo.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    (problem,) = load_problems(path, spec="dapo17k")
    assert (problem.question, problem.answer) == ("What is 6*7?", "42")
    assert problem.meta["data_source"] == "math_dapo"


def test_orz_json_shape(tmp_path):
    rows = [[{"from": "human", "value": "Find x."}, {"from": "assistant", "ground_truth": {"value": "5"}}]]
    path = tmp_path / "orz.json"
    path.write_text(json.dumps(rows))
    (problem,) = load_problems(path, spec="orz57k")
    assert (problem.question, problem.answer) == ("Find x.", "5")


def test_deepscaler_and_math500_hub_shapes_on_local_parquet(tmp_path):
    path = tmp_path / "ds.parquet"
    pq.write_table(pa.Table.from_pylist([{"problem": "P", "answer": "\\sqrt{2}", "solution": "s"}]), path)
    for spec in ("deepscaler", "math500", "aime25"):
        assert load_problems(path, spec=spec)[0].answer == "\\sqrt{2}"


# ---------------------------------------------------------------- validation errors name file, row, column


def bad(tmp_path, rows, **options):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_problems(path, **options)
    assert info.value.file == str(path)
    assert isinstance(info.value, ValueError)
    return info.value


def test_missing_column_is_named_with_the_available_ones(tmp_path):
    error = bad(tmp_path, [{"problem": "q", "answer": "1"}], question="question_text")
    assert (error.row, error.column) == (1, "question_text")
    assert "'problem'" in str(error) and "'answer'" in str(error)


def test_renamed_columns_are_reported(tmp_path):
    error = bad(tmp_path, [{"problem": "q", "solution_final": "1"}])
    assert "no answer column" in str(error) and "'solution_final'" in str(error) and "--answer" in str(error)


def test_column_missing_in_a_later_row(tmp_path):
    error = bad(tmp_path, [{"problem": "q", "answer": "1"}, {"problem": "q2", "answr": "2"}])
    assert (error.row, error.column) == (2, "answer")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no rows") as info:
        load_problems(tmp_path / "empty.jsonl")
    assert info.value.file.endswith("empty.jsonl")
    (tmp_path / "empty.csv").write_text("question,answer\n")
    with pytest.raises(DataError, match="no rows"):
        load_problems(tmp_path / "empty.csv")


def test_duplicate_ids(tmp_path):
    error = bad(
        tmp_path,
        [
            {"id": "a", "problem": "q", "answer": "1"},
            {"id": "b", "problem": "q", "answer": "1"},
            {"id": "a", "problem": "r", "answer": "2"},
        ],
    )
    assert (error.row, error.column) == (3, "id") and "first seen in row 1" in str(error)


def test_empty_gold_and_empty_question(tmp_path):
    error = bad(tmp_path, [{"problem": "q", "answer": "1"}, {"problem": "q", "answer": "  "}])
    assert (error.row, error.column) == (2, "answer") and "empty gold" in str(error)
    error = bad(tmp_path, [{"problem": "", "answer": "1"}])
    assert (error.row, error.column) == (1, "problem") and "empty question" in str(error)


@pytest.mark.parametrize("value", [7, 1.5, None, ["1"], {"v": 1}, True])
def test_non_string_gold(tmp_path, value):
    error = bad(tmp_path, [{"problem": "q", "answer": value}])
    assert error.column == "answer" and "expected a string" in str(error)


def test_non_string_question_and_bad_id(tmp_path):
    error = bad(tmp_path, [{"problem": ["q"], "answer": "1"}])
    assert error.column == "problem" and "list" in str(error)
    error = bad(tmp_path, [{"id": 1.5, "problem": "q", "answer": "1"}])
    assert error.column == "id"


def test_invalid_json_line_and_non_object_row(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"problem": "q", "answer": "1"}\n{"problem": \n')
    with pytest.raises(DataError, match="invalid JSON") as info:
        load_problems(path)
    assert info.value.row == 2
    path.write_text('{"problem": "q", "answer": "1"}\n["q", "1"]\n')
    with pytest.raises(DataError, match="expected an object") as info:
        load_problems(path)
    assert info.value.row == 2


def test_unknown_suffix_missing_file_and_unknown_options(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_file(tmp_path / "a.txt")
    with pytest.raises(DataError, match="file not found"):
        load_problems(str(tmp_path / "nope.jsonl"))
    path = write_jsonl(tmp_path / "ok.jsonl", [{"problem": "q", "answer": "1"}])
    with pytest.raises(ValueError, match="allowed: question, answer"):
        load_problems(path, qestion="problem")
    with pytest.raises(ValueError, match="valid: as_is, after_hashes"):
        load_problems(path, answer_rule="hashes")
    with pytest.raises(ValueError, match="not a task generator"):
        load_problems("no_such_source")

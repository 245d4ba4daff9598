"""Fixture files in the shapes the loaders must read, written into tmp_path (never ../shared)."""

import json

import pytest

# Rows in the shapes of ../shared/data/benchmarks/*.jsonl (field names and types as there; text made up).
BENCHMARK_ROWS = {
    "gsm8k_test.jsonl": [
        {
            "id": "gsm8k-test-0000",
            "problem": "Ann has 3 apples and buys 4. How many?",
            "answer": "7",
            "solution": "3+4 = <<3+4=7>>7\n#### 7",
            "source": "openai/grade-school-math:x",
        },
        {
            "id": "gsm8k-test-0001",
            "problem": "A shop sells 1,200 pens a day. How many in 2 days?",
            "answer": "2400",
            "solution": "1200*2=<<1200*2=2400>>2400\n#### 2,400",
            "source": "x",
        },
    ],
    "math500_test.jsonl": [
        {
            "id": "math500-000",
            "problem": "Convert $(0,3)$ to polar.",
            "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
            "solution": "So $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
            "subject": "Precalculus",
            "level": 2,
            "unique_id": "test/precalculus/807.json",
            "source": "x",
        },
        {
            "id": "math500-001",
            "problem": "Write the sum in terms of $p$ and $q$.",
            "answer": "p - q",
            "solution": "$\\boxed{p - q}$",
            "subject": "Algebra",
            "level": 5,
            "unique_id": "test/a/1.json",
            "source": "x",
        },
    ],
    "aime24_test.jsonl": [
        {
            "id": "aime24-60",
            "problem": "Find the minutes.",
            "answer": "204",
            "solution": "...",
            "url": "https://example.org",
            "source": "x",
        },
    ],
    "amc23_test.jsonl": [
        {"id": "amc23-0", "problem": "How many miles?", "answer": "27", "url": "u", "source": "x"}
    ],
    "minerva_math_test.jsonl": [
        {
            "id": "minerva-000",
            "problem": "Find the diameter in cm.",
            "answer": "1.6",
            "solution": "$s=\\boxed{1.6}$ cm",
            "type": "Astronomy",
            "source": "x",
        },
    ],
    "olympiadbench_test.jsonl": [
        {
            "id": "olympiadbench-1606",
            "problem": "How many moves?",
            "answer": "2",
            "final_answer_list": ["2"],
            "solution": ["Two."],
            "is_multiple_answer": False,
            "unit": None,
            "answer_type": "Numerical",
            "context": None,
            "subfield": "Combinatorics",
            "source": "x",
        },
        {
            "id": "olympiadbench-1700",
            "problem": "Find all pairs.",
            "answer": "(1,2), (2,1)",
            "final_answer_list": ["$(1,2)$", "$(2,1)$"],
            "solution": ["..."],
            "is_multiple_answer": True,
            "unit": "m",
            "answer_type": "Tuple",
            "context": None,
            "subfield": "Algebra",
            "source": "x",
        },
    ],
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def benchmark_dir(tmp_path):
    for name, rows in BENCHMARK_ROWS.items():
        write_jsonl(tmp_path / name, rows)
    return tmp_path

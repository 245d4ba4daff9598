import json

import pytest

from r1zero.data import generate, write_problems
from r1zero.data.answers import classify_answer, last_boxed
from r1zero.data.cli import main
from r1zero.data.summary import describe_lengths, gold_parses, summarize
from r1zero.verifiers import get_verifier

from .conftest import write_jsonl


@pytest.mark.parametrize(
    ("gold", "kind"),
    [
        ("42", "integer"),
        ("-7", "integer"),
        ("1,000", "integer"),
        ("0.25", "decimal"),
        ("4.5e33", "scientific"),
        ("6 \\times 10^{5}", "scientific"),
        ("3/4", "fraction"),
        ("\\frac{3}{4}", "fraction"),
        ("-\\dfrac{1}{2}", "fraction"),
        ("(C)", "choice"),
        ("B", "choice"),
        ("\\text{Evelyn}", "text"),
        ("even", "text"),
        ("(1,2)", "tuple/interval"),
        ("[0, \\infty)", "tuple/interval"),
        ("2\\sqrt{5}", "expression"),
        ("p - q", "expression"),
        ("x^2+1", "expression"),
        ("\\pi", "expression"),
    ],
)
def test_classify_answer(gold, kind):
    assert classify_answer(gold) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("\\fbox{7}", "7"),
        ("\\boxed 5.", "5"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("none", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_describe_lengths():
    assert describe_lengths([5]) == {"min": 5, "mean": 5.0, "median": 5, "p90": 5, "max": 5}
    assert describe_lengths(list(range(1, 11)))["p90"] == 9
    assert describe_lengths([]) == {}


def test_gold_parses_uses_the_witness_for_countdown_and_flags_bad_golds():
    (problem,) = generate("countdown", 1, difficulty=3, seed=0)
    assert gold_parses(get_verifier("countdown"), problem) == (True, "correct")
    no_witness = type(problem)(
        problem.id,
        problem.question,
        problem.answer,
        problem.verifier,
        {k: v for k, v in problem.meta.items() if k != "witness"},
    )
    assert gold_parses(get_verifier("countdown"), no_witness)[0] is False
    bad = type(problem)("m", "q", "np.arcsin(10/13)", "math", {})
    assert gold_parses(get_verifier("math"), bad) == (False, "bad_gold")


def fixture_file(tmp_path):
    return write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": "a", "problem": "What is 2 + 2?", "answer": "4"},
            {"id": "b", "problem": "Half of one?", "answer": "\\frac{1}{2}"},
            {
                "id": "c",
                "problem": "Angle?",
                "answer": "np.arcsin(10/13)",
            },  # a real unreadable MATH-style gold
            {"id": "d", "problem": "Who?", "answer": "Evelyn"},
        ],
    )


def test_summarize_counts_types_lengths_and_unparseable(tmp_path):
    from r1zero.data import load_problems

    summary = summarize(load_problems(fixture_file(tmp_path)), source="set", verifier="math", progress=False)
    assert summary.count == 4 and summary.verifiers == {"math": 4}
    assert summary.answer_types == {"integer": 1, "fraction": 1, "expression": 1, "text": 1}
    assert summary.length_unit == "characters" and summary.lengths["max"] == len("What is 2 + 2?")
    assert (summary.checked, summary.parseable) == (4, 3)
    assert [(f.id, f.gold, f.reason) for f in summary.failures] == [("c", "np.arcsin(10/13)", "bad_gold")]


def test_cli_inspect_text_and_json(tmp_path, capsys):
    path = fixture_file(tmp_path)
    assert main(["inspect", str(path), "--verifier", "math", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "problems: 4" in out and "golds the verifier accepts: 3/4 (75.00%)" in out
    assert "c: 'np.arcsin(10/13)' (math: bad_gold)" in out
    assert main(["inspect", str(path), "--verifier", "none", "--json", "--template", "r1zero"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["checked"] == 0 and data["template"] == "r1zero" and data["lengths"]["min"] > 300


def test_cli_inspect_counts_tokens_with_a_tokenizer_dir(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "What", "is", "2", "+", "?"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"problem": "What is 2 + 2 ?", "answer": "4"}, {"problem": "2 ?", "answer": "2"}],
    )
    assert (
        main(["inspect", str(path), "--tokenizer", str(tmp_path / "tok"), "--json", "--verifier", "none"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["length_unit"] == "tokens" and data["lengths"]["max"] == 6 and data["lengths"]["min"] == 2


def test_cli_generate_and_inspect_a_generated_file(tmp_path, capsys):
    out = tmp_path / "ls.jsonl"
    assert (
        main(["generate", "list_sum", "--n", "50", "--difficulty", "5-8", "--seed", "3", "--out", str(out)])
        == 0
    )
    assert main(["inspect", str(out), "--no-progress"]) == 0  # each row's own verifier (integer)
    text = capsys.readouterr().out
    assert "verifiers: integer 50" in text and "golds the verifier accepts: 50/50" in text
    write_problems(generate("list_sum", 50, difficulty="5-8", seed=3), tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_cli_reports_data_errors_without_a_traceback(tmp_path, capsys):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "q", "answer": ""}])
    assert main(["inspect", str(path)]) == 2
    assert "row 1, column 'answer': empty gold answer" in capsys.readouterr().err
    assert main(["generate", "countdown", "--difficulty", "9"]) == 2

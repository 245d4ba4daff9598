"""Build externally labelled verifier rows from Math-Verify's own test tables.

Math-Verify (huggingface/Math-Verify, MIT licence) keeps its expectations as pytest tables of
``(gold, pred, expected)``. This script reads those tables from a checkout of that repository with
``ast`` (no code of it is imported or run), turns each literal row into the project's labelled-row format
and writes ``data/verifier_external.jsonl``:

    {"response": "<think>…</think> <answer>PRED</answer>", "gold": GOLD, "expected": bool,
     "category": "external", "note": "...", "source": "math-verify:tests/FILE::TEST[i]", "split": "tune"|"blind"}

The labels are Math-Verify's authors', except where a test's expectation depends on a non-default option
(a float precision other than 6, ``strict=False``, ``allow_set_relation_comp=False``, a
a keyword option of ``compare_strings``): such a row is converted with the default call its users make,
``verify(parse(gold), parse(pred))``, which gives its label (``"label": "default-call"``); the row is
dropped when the same (gold, pred) is already a row. A string-extraction row (``parse(pred,
[StringExtractionConfig()]) == [value, "A"]``) whose text states the answer ("The answer is A.", "A. Because
…") becomes gold ``A`` with the authors' label, True (``"label": "authors (string-extraction config)"``):
the default call reads no letter there, and "The answer is A." not answering ``A`` would be no fair label;
"Because B is valid" states no answer and is dropped. Besides the parametrized tables, literal
``compare_strings(gold, pred, …) == N`` assertions in test bodies are rows too, and an f-string row whose
fields are ``math.<function>(number)`` is formatted. ``split``: rows already in the output file keep theirs
(``tune`` / ``blind``, about 30% by a hash of (gold, pred)); a new row gets ``blind2`` or ``tune`` by a
second hash (about 30% ``blind2``), scored once.

    python bench/verifier_external.py --math-verify-repo PATH_TO_MATH_VERIFY_CHECKOUT
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "verifier_external.jsonl"
#: Test functions whose "gold" argument is the model's text and "pred" the reference.
_SWAPPED = {"test_boxed"}
#: Test files with no (gold, prediction) tables: parser configs, error raising, timeouts.
_SKIPPED_FILES = {"test_configs.py", "test_raise_on_error.py", "test_timeout.py"}
#: Keyword options of a row and the value that is Math-Verify's default meaning.
_DEFAULTS = {"strict": True, "precision": 6, "allow_set_relation_comp": True}
BLIND_PERCENT = 30
#: A string-extraction row is an answer-checker test when its text states the answer (not "Because B is valid").
_STATED = re.compile(r"answer is|^\s*[A-Z]\.", re.IGNORECASE)


def blind(gold: str, pred: str, salt: str = "") -> bool:
    """Whether a row belongs to a blind split (a stable hash, about ``BLIND_PERCENT``% of rows).

    ``salt`` picks an independent split (``"blind2"`` for rows added after the first split was scored).
    """
    digest = hashlib.sha256(f"{salt}{gold}\x00{pred}".encode()).digest()
    return digest[0] * 100 // 256 < BLIND_PERCENT


def _literal(node: ast.expr):
    """A literal value, or an f-string whose fields are ``math.<function>(number)`` with a format spec."""
    if not isinstance(node, ast.JoinedStr):
        return ast.literal_eval(node)
    pieces = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            pieces.append(value.value)
            continue
        call = value.value
        if not (
            isinstance(call, ast.Call)
            and ast.unparse(call.func).startswith("math.")
            and len(call.args) == 1
            and isinstance(call.args[0], ast.Constant)
        ):
            raise ValueError(f"not a literal f-string field: {ast.unparse(value)}")
        function = getattr(math, ast.unparse(call.func).removeprefix("math."))
        spec = ast.unparse(value.format_spec)[2:-1] if value.format_spec is not None else ""
        pieces.append(format(function(call.args[0].value), spec))
    return "".join(pieces)


def _call_options(func: ast.FunctionDef) -> dict:
    """Constant keyword arguments of the compare call in a test body (``precision=5``)."""
    options = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in _DEFAULTS and isinstance(keyword.value, ast.Constant):
                    options[keyword.arg] = keyword.value.value
    return options


def _row(gold: str, pred: str, expected, func: str, note: str, source: str, default_call: bool) -> dict:
    if func in _SWAPPED:
        gold, pred = pred, gold
    row = {
        "response": f"<think>Worked it out.</think> <answer>{pred}</answer>",
        "gold": gold,
        "expected": bool(expected),
        "category": "external",
        "note": note,
        "source": source,
    }
    if default_call:
        row["label"] = "default-call"  # the test used a non-default option; relabelled by main()
    return row


def _non_default(options: dict) -> bool:
    return any(options.get(k, v) != v for k, v in _DEFAULTS.items())


def table_rows(source: str, name: str) -> list[dict]:
    """The rows of one test file: each ``@pytest.mark.parametrize`` table with a gold and a prediction
    (a string-extraction table's expected string is its gold) and each literal
    ``compare_strings(gold, pred, …) == N`` assertion."""
    rows = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef):
            continue
        body_options = _call_options(func)
        for decorator in func.decorator_list:
            if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize")):
                continue
            names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(",")]
            if "pred" not in names or not ({"gold", "config"} & set(names)):
                continue
            for index, element in enumerate(decorator.args[1].elts):
                values = {}
                for key, node in zip(names, element.elts, strict=True):
                    try:
                        values[key] = _literal(node)
                    except ValueError:  # a config object or a computed value
                        values[key] = None
                where = f"math-verify:tests/{name}::{func.name}[{index}]"
                if "config" in values:  # string extraction: parse(pred, [config]) == [value, string]
                    if values.get("expected") and _STATED.search(values["pred"] or ""):
                        answer = values["expected"][-1]
                        if re.search(rf"(?:answer is\s*|^\s*){re.escape(answer)}\b", values["pred"]):
                            note = f"{func.name} row {index}"
                            rows.append(_row(answer, values["pred"], True, func.name, note, where, False))
                            rows[-1]["label"] = "authors (string-extraction config)"
                    continue
                if values.get("gold") is None or values.get("pred") is None:
                    continue
                options = {**body_options, **{k: values[k] for k in _DEFAULTS if k in values}}
                expected = values.get("expected", values.get("result"))
                rows.append(
                    _row(
                        values["gold"],
                        values["pred"],
                        expected,
                        func.name,
                        f"{func.name} row {index}",
                        where,
                        _non_default(options),
                    )
                )
        if func.decorator_list:
            continue
        for node in ast.walk(func):  # assert compare_strings("$\\frac{1}{3}$", "0.3333$", precision=4) == 1
            if not (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Call)
                and ast.unparse(node.left.func) == "compare_strings"
                and len(node.comparators) == 1
                and isinstance(node.comparators[0], ast.Constant)
                and all(isinstance(arg, ast.Constant) for arg in node.left.args[:2])
            ):
                continue
            options = {
                k.arg: k.value.value
                for k in node.left.keywords
                if k.arg in _DEFAULTS and isinstance(k.value, ast.Constant)
            }
            gold, pred = (arg.value for arg in node.left.args[:2])
            where = f"math-verify:tests/{name}::{func.name}:line{node.lineno}"
            note = f"{func.name} line {node.lineno}"
            rows.append(
                _row(gold, pred, node.comparators[0].value, func.name, note, where, _non_default(options))
            )
    return rows


def default_call(gold: str, pred: str) -> bool:
    """Math-Verify's verdict with its default call, ``verify(parse(gold), parse(pred))``."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(pred)))
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--math-verify-repo", type=Path, required=True, help="a git checkout of Math-Verify")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    git = (
        ["git", f"--git-dir={args.math_verify_repo}"]
        if args.math_verify_repo.name.endswith("repo")
        else ["git", "-C", str(args.math_verify_repo)]
    )
    names = subprocess.run(
        [*git, "ls-tree", "-r", "--name-only", "HEAD", "tests/"], check=True, capture_output=True, text=True
    ).stdout.split()
    old = {}
    if args.out.exists():
        old = {
            (r["gold"], r["response"]): r["split"] for r in map(json.loads, args.out.read_text().splitlines())
        }
    candidates = []
    for path in sorted(n for n in names if n.endswith(".py") and n.split("/")[-1] not in _SKIPPED_FILES):
        text = subprocess.run(
            [*git, "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
        ).stdout
        candidates += table_rows(text, path.removeprefix("tests/"))
    # Rows under the default meaning first, so that an option row whose pair is already a row is dropped.
    candidates.sort(key=lambda r: "label" in r)  # (a stable sort: the files' order otherwise)
    rows, seen = [], set()
    for row in candidates:
        key = (row["gold"], row["response"])
        if key in seen:
            continue
        seen.add(key)
        if row.get("label") == "default-call":
            pred = (
                row["response"]
                .removeprefix("<think>Worked it out.</think> <answer>")
                .removesuffix("</answer>")
            )
            row["expected"] = default_call(row["gold"], pred)
        if key in old:
            row["split"] = old[key]
        else:
            row["split"] = "blind2" if blind(row["gold"], row["response"], salt="blind2") else "tune"
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = {split: sum(r["split"] == split for r in rows) for split in ("tune", "blind", "blind2")}
    print(f"{len(rows)} rows {counts} -> {args.out}")


if __name__ == "__main__":
    main()

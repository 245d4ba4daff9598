"""Build externally labelled verifier rows from Math-Verify's own test tables.

Math-Verify (huggingface/Math-Verify, MIT licence) keeps its expectations as pytest tables of
``(gold, pred, expected)``. This script reads those tables from a checkout of that repository with
``ast`` (no code of it is imported or run), turns each literal row into the project's labelled-row format
and writes ``data/verifier_external.jsonl``:

    {"response": "<think>…</think> <answer>PRED</answer>", "gold": GOLD, "expected": bool,
     "category": "external", "note": "...", "source": "math-verify:tests/FILE::TEST[i]", "split": "tune"|"blind"}

The labels are Math-Verify's authors', not this project's. Rows whose test passes non-default options
(``strict=False``, a float precision other than 6, ``allow_set_relation_comp=False``) are skipped: they
test an option, not the default meaning. ``split`` is chosen by a hash of (gold, pred): about 30% of
rows are ``blind``, scored once, never read while tuning the verifier.

    python bench/verifier_external.py --math-verify-repo PATH_TO_MATH_VERIFY_CHECKOUT
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "verifier_external.jsonl"
#: Test functions whose "gold" argument is the model's text and "pred" the reference.
_SWAPPED = {"test_boxed"}
#: Test files whose tables test something other than equivalence (string extraction settings).
_SKIPPED_FILES = {"test_string_extraction.py"}
#: Keyword options of a row and the value that is Math-Verify's default meaning.
_DEFAULTS = {"strict": True, "precision": 6, "allow_set_relation_comp": True}
BLIND_PERCENT = 30


def blind(gold: str, pred: str) -> bool:
    """Whether a row belongs to the blind split (a stable hash, about ``BLIND_PERCENT``% of rows)."""
    digest = hashlib.sha256(f"{gold}\x00{pred}".encode()).digest()
    return digest[0] * 100 // 256 < BLIND_PERCENT


def _call_options(func: ast.FunctionDef) -> dict:
    """Constant keyword arguments of the compare call in a test body (``precision=5``)."""
    options = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in _DEFAULTS and isinstance(keyword.value, ast.Constant):
                    options[keyword.arg] = keyword.value.value
    return options


def table_rows(source: str, name: str) -> list[dict]:
    """The literal rows of every ``@pytest.mark.parametrize("gold, pred, …")`` table in one test file."""
    rows = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef):
            continue
        body_options = _call_options(func)
        for decorator in func.decorator_list:
            if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize")):
                continue
            names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(",")]
            if "gold" not in names or "pred" not in names:
                continue
            for index, element in enumerate(decorator.args[1].elts):
                try:
                    values = dict(zip(names, ast.literal_eval(element), strict=True))
                except ValueError:  # an f-string or a computed value: not a literal row
                    continue
                options = {**body_options, **{k: values[k] for k in _DEFAULTS if k in values}}
                if any(
                    options.get(k, v) != v for k, v in _DEFAULTS.items() if k != "allow_set_relation_comp"
                ):
                    continue
                if options.get("allow_set_relation_comp") is False:
                    continue
                expected = values.get("expected", values.get("result"))
                gold, pred = values["gold"], values["pred"]
                if func.name in _SWAPPED:
                    gold, pred = pred, gold
                rows.append(
                    {
                        "response": f"<think>Worked it out.</think> <answer>{pred}</answer>",
                        "gold": gold,
                        "expected": bool(expected),
                        "category": "external",
                        "note": f"{func.name} row {index}",
                        "source": f"math-verify:tests/{name}::{func.name}[{index}]",
                        "split": "blind" if blind(gold, pred) else "tune",
                    }
                )
    return rows


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
    rows, seen = [], set()
    for path in sorted(n for n in names if n.endswith(".py") and n.split("/")[-1] not in _SKIPPED_FILES):
        text = subprocess.run(
            [*git, "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
        ).stdout
        for row in table_rows(text, path.removeprefix("tests/")):
            key = (row["gold"], row["response"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    blind_n = sum(r["split"] == "blind" for r in rows)
    print(f"{len(rows)} rows ({len(rows) - blind_n} tune, {blind_n} blind) -> {args.out}")


if __name__ == "__main__":
    main()

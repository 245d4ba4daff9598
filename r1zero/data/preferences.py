"""Synthetic preference pairs for the ``list_sum`` demo task, to train a learned (Bradley-Terry) reward model.

Each row is one prompt, as the trainer renders it (``tiny-demo`` template, no think prefix), with two
completions written in the tiny base model's own styles (see ``r1zero/assets/tiny-base/README.md``): worked
running-sum chains (``3+5=8, 8+2=10, the answer is 10.``), direct answers (``the answer is 10.``), with or
without the R1-Zero tags, and occasional ``wait`` self-corrections (``8+2=11, wait, 8+2=10``).

``chosen`` is always right and well formatted (the strict rule reward gives it 1); ``rejected`` always gets
0, for one reason recorded in ``kind``:

- ``wrong_answer``: a direct answer off by 1-3, in the tags; ``chosen`` is the same sentence with the right
  number. The pair differs only in arithmetic.
- ``wrong_step``: a worked chain with one wrong step carried to a wrong answer, in the tags; ``chosen`` is
  the right chain. Also arithmetic only, but the error is local (one ``a+b=c`` that does not add up).
- ``untagged``: the right answer, worked or direct, with no tags (the base model's plain form).
- ``broken_format``: the right answer with the tags broken (no ``</think>``, an unclosed or missing answer
  block, text after ``</answer>``).

So a reward model can learn the format from these pairs far more easily than the arithmetic, and a policy
trained on it can raise the learned reward while its strict (rule) accuracy falls: reward hacking, the point
of the learned-reward experiment (docs/ppo_vs_grpo.md).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from r1zero.data.generators import Difficulty, generate
from r1zero.data.templates import get_template

__all__ = ["KINDS", "KIND_SHARES", "generate_preferences", "preferences_to_jsonl", "write_preferences"]

#: Why a rejected completion loses, and the share of rows of each kind.
KIND_SHARES: dict[str, float] = {
    "wrong_answer": 0.3,
    "wrong_step": 0.3,
    "untagged": 0.2,
    "broken_format": 0.2,
}
KINDS = tuple(KIND_SHARES)

#: The prompt template the trainer's CPU demo uses.
TEMPLATE = "tiny-demo"
#: Share of worked (rather than direct) completions where the kind leaves the style free.
WORKED_SHARE = 0.5
#: Share of worked chains with one ``wait`` self-correction.
WAIT_SHARE = 0.1


def generate_preferences(n: int, seed: int = 0, difficulty: Difficulty | str = "5-8") -> list[dict[str, Any]]:
    """``n`` preference rows ``{"prompt", "chosen", "rejected", "kind", "answer"}`` for ``list_sum``.

    The same ``(n, seed, difficulty)`` gives the same rows in every process; ``answer`` is the gold sum.

    >>> row = generate_preferences(3, seed=0)[2]
    >>> row["prompt"].splitlines()[1:], row["answer"], row["kind"]
    (['User: What is 2+5+6+1+4+4?', 'Assistant:'], '22', 'wrong_answer')
    >>> row["chosen"]
    ' <think> the answer is 22. </think> <answer>22</answer>'
    >>> row["rejected"]
    ' <think> the answer is 20. </think> <answer>20</answer>'
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    problems = generate("list_sum", n, difficulty=difficulty, seed=seed)
    template = get_template(TEMPLATE)
    rng = random.Random(f"preferences-{seed}")
    rows = []
    for problem in problems:
        numbers = list(problem.meta["numbers"])
        kind = rng.choices(KINDS, weights=list(KIND_SHARES.values()))[0]
        chosen, rejected = _PAIR_MAKERS[kind](rng, numbers)
        prompt = template.render(problem.question, think_prefix=False)
        rows.append(
            {"prompt": prompt, "chosen": chosen, "rejected": rejected, "kind": kind, "answer": problem.answer}
        )
    return rows


def preferences_to_jsonl(rows: list[dict[str, Any]]) -> str:
    """Rows as JSONL text, one object per line, byte-stable for equal rows.

    >>> preferences_to_jsonl([{"prompt": "p", "chosen": "a", "rejected": "b", "kind": "untagged"}])
    '{"prompt": "p", "chosen": "a", "rejected": "b", "kind": "untagged"}\\n'
    """
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_preferences(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows to a JSONL file (``datasets.load_dataset("json", data_files=path)`` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(preferences_to_jsonl(rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- completions
def _chain(numbers: list[int], wrong_at: int = 0, delta: int = 0, wait_at: int = 0) -> tuple[str, int]:
    """A running-sum chain and its final total; step ``wrong_at`` (1-based, 0 = none) is off by ``delta``
    and the error is carried on; step ``wait_at`` is first written wrong, then redone after ``wait``.

    >>> _chain([3, 5, 2])
    ('3+5=8, 8+2=10', 10)
    >>> _chain([3, 5, 2], wrong_at=1, delta=1, wait_at=2)
    ('3+5=9, 9+2=12, wait, 9+2=11', 11)
    """
    steps, total = [], numbers[0]
    for i, n in enumerate(numbers[1:], start=1):
        new = total + n + (delta if i == wrong_at else 0)
        step = f"{total}+{n}={new}"
        if i == wait_at:
            step = f"{total}+{n}={new + 1}, wait, {step}"
        steps.append(step)
        total = new
    return ", ".join(steps), total


def _body(rng: random.Random, numbers: list[int], worked: bool) -> tuple[str, int]:
    """A right answer in the base model's words (worked or direct) and the answer."""
    total = sum(numbers)
    if not worked:
        return f"the answer is {total}.", total
    wait_at = rng.randint(1, len(numbers) - 1) if rng.random() < WAIT_SHARE else 0
    chain, _ = _chain(numbers, wait_at=wait_at)
    return f"{chain}, the answer is {total}.", total


def _tagged(body: str, answer: int) -> str:
    return f" <think> {body} </think> <answer>{answer}</answer>"


def _wrong_answer(rng: random.Random, numbers: list[int]) -> tuple[str, str]:
    total = sum(numbers)
    wrong = total + rng.choice([-3, -2, -1, 1, 2, 3])
    return _tagged(f"the answer is {total}.", total), _tagged(f"the answer is {wrong}.", wrong)


def _wrong_step(rng: random.Random, numbers: list[int]) -> tuple[str, str]:
    chosen_body, total = _body(rng, numbers, worked=True)
    wrong_at = rng.randint(1, len(numbers) - 1)
    delta = rng.choice([-3, -2, -1, 1, 2, 3])
    if sum(numbers[: wrong_at + 1]) + delta < 1:  # keep every running total positive
        delta = -delta
    chain, wrong = _chain(numbers, wrong_at=wrong_at, delta=delta)
    return _tagged(chosen_body, total), _tagged(f"{chain}, the answer is {wrong}.", wrong)


def _untagged(rng: random.Random, numbers: list[int]) -> tuple[str, str]:
    body, total = _body(rng, numbers, worked=rng.random() < WORKED_SHARE)
    return _tagged(body, total), f" {body}"


#: Ways to break the format around a right answer (each fails ``check_format``).
_BREAKS = (
    lambda body, n: f" <think> {body} <answer>{n}</answer>",  # no </think>
    lambda body, n: f" <think> {body} </think> <answer>{n}",  # unclosed answer
    lambda body, n: f" <think> {body} </think> {n}",  # no answer block
    lambda body, n: f" <think> {body} </think> <answer>{n}</answer> the answer is {n}.",  # trailing text
)


def _broken_format(rng: random.Random, numbers: list[int]) -> tuple[str, str]:
    body, total = _body(rng, numbers, worked=rng.random() < WORKED_SHARE)
    return _tagged(body, total), rng.choice(_BREAKS)(body, total)


_PAIR_MAKERS = {
    "wrong_answer": _wrong_answer,
    "wrong_step": _wrong_step,
    "untagged": _untagged,
    "broken_format": _broken_format,
}

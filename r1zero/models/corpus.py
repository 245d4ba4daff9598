"""The synthetic pretraining corpus of tiny-base: seeded, pure, and designed so zero-RL has something to find.

Design (the shares are ``CorpusSpec``'s; the model card, ``r1zero/assets/tiny-base/README.md``, lists them):

- The RL task, sums of lists of single digits (``list_sum``), appears **only in plain form**
  (``User: What is 3+5+2?`` / ``Assistant: ...``), never inside the R1-Zero tags. Its answers are
  mostly *direct* (``the answer is 10.``) and sloppy (half are off by 1-3); a minority are *worked*
  running-sum chains (``3+5=8, 8+2=10, the answer is 10.``), which are always right. So the base
  sometimes solves the task, and the longer mode is the more accurate one.
- The tag format appears only on **other operations**: two-digit additions (``23+45``) and mixed +/-
  chains of single digits (``9-3+4``), under the demo template's header line. Their worked versions end
  ``... the answer is N. </think> <answer>N</answer>``: the whole winning path (worked steps inside
  ``<think>``, then a closed answer tag) exists in the base, but never for the RL task.
- A few worked chains contain a self-correction (``8+2=11, wait, 8+2=10``), so reflection has a
  non-zero step-0 rate that RL can amplify or suppress.

Variant corpora for self-checking (off by default; the defaults keep tiny-base's corpus unchanged):
``slip_share`` makes first attempts sometimes wrong (a running step written off by 1-2 and carried on to
a wrong answer), ``check_share`` follows some slips with a check that re-does the step right
(``8+2=11, let me recheck, 8+2=10``), and ``confirm_share`` re-checks a right step (the value stays), so
checking has a base rate that pays only where it repairs a slip. ``guess_check_share`` follows some
direct answers with a check that works the sum out and states its result (``the answer is 12. wait,
3+5=8, 8+2=10, the answer is 10.``): the first attempt is a guess, sloppy as direct answers are, and the
check repairs it when it is wrong. ``worked_share_list_sum`` sets the list sums' own worked share (at 0 a
check after a guess is the only worked route to a list sum's answer in the corpus).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from r1zero.models.tiny import DEMO_TEMPLATE_HEADER

__all__ = [
    "CorpusSpec",
    "Document",
    "build_corpus",
    "generate_document",
    "is_worked",
    "list_sum_question",
    "slipped_chain",
    "worked_chain",
]


@dataclass(frozen=True)
class CorpusSpec:
    """Mixture of the tiny-base corpus (shares are probabilities per document)."""

    list_sum_share: float = 0.5
    """Share of documents that are plain list sums (the RL task, never tagged)."""
    list_len_min: int = 3
    """Shortest list in list-sum documents."""
    list_len_max: int = 9
    """Longest list in list-sum documents (the demo task uses 5-8)."""
    worked_share_plain: float = 0.25
    """Share of plain documents answered with a worked running-sum chain (else direct)."""
    worked_share_tagged: float = 0.33
    """Share of tagged documents answered with a worked chain inside ``<think>`` (else direct)."""
    sloppy_share: float = 0.5
    """Share of direct answers that are off by 1-3 (worked answers are always right)."""
    two_digit_share: float = 0.35
    """Among other-operation documents: share of two-digit additions (the rest are mixed +/- chains)."""
    tagged_share: float = 0.85
    """Among other-operation documents: share written in the tag format (the rest are plain)."""
    plain_header_share: float = 0.6
    """Share of plain other-operation documents that carry the template's header line and still answer
    plainly (instructions are not always followed in real text), so the header does not force the tags
    and the step-0 format rate has room to grow. List sums never carry the header."""
    wait_share: float = 0.05
    """Share of worked chains containing one self-correction ``..., wait, ...``."""
    chain_len_min: int = 3
    """Shortest mixed +/- chain."""
    chain_len_max: int = 8
    """Longest mixed +/- chain."""
    slip_share: float = 0.0
    """Share of worked chains without a ``wait`` in which one running step is written off by 1-2 and
    carried on, so the stated answer is wrong (0: worked chains are always right)."""
    check_share: float = 0.0
    """Share of slipped chains in which a check follows the slipped step at once and re-does it right;
    the chain then goes on from the right value."""
    confirm_share: float = 0.0
    """Share of the other worked chains (no ``wait``, no slip) with a check that re-does a right step and
    keeps its value."""
    check_phrases: tuple[str, ...] = ("wait", "let me recheck", "let me verify")
    """Words that open a check (one drawn uniformly per check)."""
    slip_kind: str = "value"
    """What a slip gets wrong: ``"value"`` (the step's result is off by 1-2) or ``"term"`` (the step adds
    a term off by 1-2, as when the list is misread, and its result is right for that term)."""
    guess_check_share: float = 0.0
    """Share of direct answers followed by a check that works the chain out and states its (right)
    result: ``the answer is 12. wait, 3+5=8, 8+2=10, the answer is 10.``"""
    worked_share_list_sum: float | None = None
    """Share of list-sum documents answered with a worked chain (None: ``worked_share_plain``)."""

    def __post_init__(self) -> None:
        shares = ("list_sum_share", "worked_share_plain", "worked_share_tagged", "sloppy_share")
        for name in (*shares, "slip_share", "check_share", "confirm_share", "guess_check_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CorpusSpec.{name}={value} must be in [0, 1]")
        if not 2 <= self.list_len_min <= self.list_len_max:
            raise ValueError(
                f"list lengths {self.list_len_min}..{self.list_len_max} must satisfy 2 <= min <= max"
            )
        if self.slip_kind not in ("value", "term"):
            raise ValueError(f"CorpusSpec.slip_kind={self.slip_kind!r}; valid: 'value', 'term'")
        if self.worked_share_list_sum is not None and not 0.0 <= self.worked_share_list_sum <= 1.0:
            raise ValueError(
                f"CorpusSpec.worked_share_list_sum={self.worked_share_list_sum} must be in [0, 1]"
            )
        if (self.check_share or self.confirm_share or self.guess_check_share) and not self.check_phrases:
            raise ValueError("CorpusSpec.check_phrases is empty; checks need at least one phrase")


@dataclass(frozen=True)
class Document:
    """One corpus document and what it is (the labels let tests check the corpus invariants)."""

    text: str
    task: str  # "list_sum" | "two_digit" | "mixed_chain"
    tagged: bool
    worked: bool
    wait: bool
    slip: bool = False
    """A running step was written wrong (carried on unless ``check``)."""
    check: bool = False
    """A check re-did a step (repairing the slip, or confirming a right step) or worked out a guess."""
    guess: bool = False
    """A direct answer (a guess) was followed by a check that worked the sum out."""


def list_sum_question(numbers: list[int]) -> str:
    """The question text of a list sum, as in the corpus and the demo prompts.

    >>> list_sum_question([3, 5, 2])
    'What is 3+5+2?'
    """
    return "What is " + "+".join(str(n) for n in numbers) + "?"


def worked_chain(first: int, steps: list[tuple[str, int]], wait_at: int | None = None) -> tuple[str, int]:
    """A running-total chain ``a+b=c, c-d=e, ...`` and its final value; optionally one self-correction.

    Args:
        first: The starting value.
        steps: ``(op, operand)`` pairs with op ``"+"`` or ``"-"``.
        wait_at: Index of the step written first with a wrong result, then ``wait,`` and redone.

    >>> worked_chain(3, [("+", 5), ("+", 2)])
    ('3+5=8, 8+2=10', 10)
    >>> worked_chain(3, [("+", 5), ("-", 2)], wait_at=1)
    ('3+5=8, 8-2=7, wait, 8-2=6', 6)
    """
    parts, total = [], first
    for i, (op, operand) in enumerate(steps):
        new = total + operand if op == "+" else total - operand
        if i == wait_at:
            wrong = new + 1 if op == "-" or new == 0 else new + (1 if i % 2 else -1)
            parts.append(f"{total}{op}{operand}={wrong}, wait")
        parts.append(f"{total}{op}{operand}={new}")
        total = new
    return ", ".join(parts), total


def slipped_chain(
    first: int,
    steps: list[tuple[str, int]],
    at: int,
    by: int,
    check: str | None = None,
    term: bool = False,
) -> tuple[str, int]:
    """A running-total chain whose step ``at`` is first written off by ``by``, and its final value.

    Without ``check`` the slip is carried on (the final value is off too); with it, ``check`` follows the
    step, which is re-done right, and the chain goes on from the right value (``by=0``: a check that
    confirms a right step). With ``term`` the slip is in the term instead (kept within 0-9), and the
    written result is right for that term.

    >>> slipped_chain(3, [("+", 5), ("+", 2), ("+", 4)], at=1, by=1)
    ('3+5=8, 8+2=11, 11+4=15', 15)
    >>> slipped_chain(3, [("+", 5), ("+", 2), ("+", 4)], at=1, by=-2, check="let me recheck")
    ('3+5=8, 8+2=8, let me recheck, 8+2=10, 10+4=14', 14)
    >>> slipped_chain(3, [("+", 5), ("+", 2)], at=0, by=0, check="let me verify")
    ('3+5=8, let me verify, 3+5=8, 8+2=10', 10)
    >>> slipped_chain(3, [("+", 5), ("+", 2), ("+", 4)], at=1, by=1, check="wait", term=True)
    ('3+5=8, 8+3=11, wait, 8+2=10, 10+4=14', 14)
    """
    parts, total = [], first
    for i, (op, operand) in enumerate(steps):
        new = total + operand if op == "+" else total - operand
        if i == at:
            shown, written = operand, new + by if new + by >= 0 else new - by
            if term:
                shown = operand + by if 0 <= operand + by <= 9 else operand - by
                written = total + shown if op == "+" else total - shown
            if check is None:
                operand, new = shown, written
            else:
                parts.append(f"{total}{op}{shown}={written}, {check}")
        parts.append(f"{total}{op}{operand}={new}")
        total = new
    return ", ".join(parts), total


def _chain_for(
    rng: random.Random, first: int, steps: list[tuple[str, int]], worked: bool, wait: bool, spec: CorpusSpec
) -> tuple[str, int, bool, bool]:
    """The chain text, its final value, and whether it slipped and whether it checked.

    The default spec draws exactly what tiny-base's corpus drew (the ``> 0`` guards skip the new draws).
    """
    wait_at = rng.randrange(len(steps)) if wait else None
    if worked and not wait and spec.slip_share > 0 and rng.random() < spec.slip_share:
        at, by = rng.randrange(len(steps)), rng.choice((-2, -1, 1, 2))
        checked = spec.check_share > 0 and rng.random() < spec.check_share
        phrase = rng.choice(spec.check_phrases) if checked else None
        term = spec.slip_kind == "term"
        return (*slipped_chain(first, steps, at, by, phrase, term), True, checked)
    if worked and not wait and spec.confirm_share > 0 and rng.random() < spec.confirm_share:
        at, phrase = rng.randrange(len(steps)), rng.choice(spec.check_phrases)
        return (*slipped_chain(first, steps, at, 0, phrase), False, True)
    return (*worked_chain(first, steps, wait_at=wait_at), False, False)


def is_worked(response: str) -> bool:
    """Whether a response is a worked (step-by-step) answer: at least two ``=`` steps.

    Direct answers state the result at most once (``the answer is 17.`` or ``3+5+9=17.``).

    >>> is_worked("3+5=8, 8+2=10, the answer is 10. </think> <answer>10</answer>")
    True
    >>> is_worked("the answer is 10. </think> <answer>10</answer>")
    False
    """
    return response.count("=") >= 2


def _sloppy(rng: random.Random, value: int, spec: CorpusSpec) -> int:
    if rng.random() >= spec.sloppy_share:
        return value
    off = rng.randint(1, 3) * rng.choice((-1, 1))
    return value + off if value + off >= 0 else value - off


def _answer(
    rng: random.Random, chain: str, value: int, worked: bool, spec: CorpusSpec
) -> tuple[str, int, bool]:
    """The answer text, the value it ends on, and whether a guess was checked.

    Worked chains are right; direct answers may be sloppy, and a check after one works the chain out.
    """
    stated = value if worked else _sloppy(rng, value, spec)
    if worked:
        return f"{chain}, the answer is {stated}.", stated, False
    if spec.guess_check_share > 0 and rng.random() < spec.guess_check_share:
        phrase = rng.choice(spec.check_phrases)
        return f"the answer is {stated}. {phrase}, {chain}, the answer is {value}.", value, True
    return f"the answer is {stated}.", stated, False


def _list_sum(rng: random.Random, spec: CorpusSpec) -> tuple[str, str, int, list[tuple[str, int]]]:
    numbers = [rng.randint(1, 9) for _ in range(rng.randint(spec.list_len_min, spec.list_len_max))]
    return list_sum_question(numbers), "list_sum", numbers[0], [("+", n) for n in numbers[1:]]


def _two_digit(rng: random.Random, spec: CorpusSpec) -> tuple[str, str, int, list[tuple[str, int]]]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a}+{b}?", "two_digit", a, [("+", b - b % 10), ("+", b % 10)]


def _mixed_chain(rng: random.Random, spec: CorpusSpec) -> tuple[str, str, int, list[tuple[str, int]]]:
    first = rng.randint(1, 9)
    steps, total = [], first
    n_steps = rng.randint(spec.chain_len_min, spec.chain_len_max) - 1
    minus_at = rng.randrange(n_steps)  # at least one "-": a mixed chain is never a list sum
    for i in range(n_steps):
        operand = rng.randint(0, 9)
        op = "-" if i == minus_at or (rng.random() < 0.5) else "+"
        if op == "-" and operand > total:
            operand = rng.randint(0, total)
        steps.append((op, operand))
        total = total + operand if op == "+" else total - operand
    question = "What is " + str(first) + "".join(f"{op}{n}" for op, n in steps) + "?"
    return question, "mixed_chain", first, steps


def generate_document(rng: random.Random, spec: CorpusSpec = CorpusSpec()) -> Document:
    """Draw one corpus document (text without BOS/EOS; the pretraining recipe adds them)."""
    if rng.random() < spec.list_sum_share:
        question, task, first, steps = _list_sum(rng, spec)
        tagged = False
    else:
        make = _two_digit if rng.random() < spec.two_digit_share else _mixed_chain
        question, task, first, steps = make(rng, spec)
        tagged = rng.random() < spec.tagged_share
    worked_share = spec.worked_share_tagged if tagged else spec.worked_share_plain
    if task == "list_sum" and spec.worked_share_list_sum is not None:
        worked_share = spec.worked_share_list_sum
    worked = rng.random() < worked_share
    wait = worked and rng.random() < spec.wait_share
    chain, value, slip, check = _chain_for(rng, first, steps, worked, wait, spec)
    answer, stated, guess = _answer(rng, chain, value, worked, spec)
    if tagged:
        text = f"{DEMO_TEMPLATE_HEADER}\nUser: {question}\nAssistant: <think> {answer} </think> <answer>{stated}</answer>"
    elif task != "list_sum" and rng.random() < spec.plain_header_share:
        text = f"{DEMO_TEMPLATE_HEADER}\nUser: {question}\nAssistant: {answer}"
    else:
        text = f"User: {question}\nAssistant: {answer}"
    return Document(
        text=text,
        task=task,
        tagged=tagged,
        worked=worked,
        wait=wait,
        slip=slip,
        check=check or guess,
        guess=guess,
    )


def build_corpus(n_documents: int, seed: int, spec: CorpusSpec = CorpusSpec()) -> Iterator[Document]:
    """Yield ``n_documents`` documents, the same ones for the same seed and spec."""
    rng = random.Random(seed)
    for _ in range(n_documents):
        yield generate_document(rng, spec)

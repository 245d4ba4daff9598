"""Rule-based reasoning-behaviour types of a completion: verification, backtracking, subgoal setting, enumeration.

Pure functions on strings; no torch, no I/O. Gandhi et al. 2025 ("Cognitive Behaviors that Enable
Self-Improving Reasoners", arXiv 2503.01307; code: kanishkg/cognitive-behaviors) name four behaviours behind
self-improvement under RL: *verification* (checking an intermediate result: "Let me check my answer"),
*backtracking* (abandoning a failing approach: "Let's try a different approach"), *subgoal setting*
(breaking the problem into intermediate goals: "Let's try to get to a multiple of 10") and backward
chaining. SimpleRL-Zoo (Zeng et al. 2025, arXiv 2503.18892) tracks verification, backtracking, subgoal
setting and *enumeration* (going through cases or candidate values one by one) during zero RL; these four
are the types here. Both papers label with an LLM judge; here each type is a short list of phrasings,
matched case-insensitively on word boundaries, cheap enough for every completion of every step. Oat (Liu et
al. 2025, "There May Not Be Aha Moment in R1-Zero-like Training") shows that self-reflection words do not
by themselves make a reflection effective; ``behaviour_rates`` therefore splits completions that show a
type by whether their final answer is correct (effective) or not (superficial).

The phrase lists below are this module's own reading of those definitions; their precision on a hand-labelled
set is measured by ``tests/eval/test_behaviour_types.py`` and reported in ``docs/report.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

__all__ = ["BEHAVIOUR_PATTERNS", "BEHAVIOUR_TYPES", "behaviour_rates", "classify", "find_behaviours"]

#: the four types, in report order
BEHAVIOUR_TYPES: tuple[str, ...] = ("verification", "backtracking", "subgoal", "enumeration")

_NUM = r"-?\d+(?:\.\d+)?"

#: regular expressions per type (case-insensitive); each is one phrasing a labeller would accept
BEHAVIOUR_PATTERNS: dict[str, tuple[str, ...]] = {
    "verification": (
        r"\b(?:let me|let's|let us|i(?:'ll| will)|we can|to) (?:double[- ])?(?:check|verify|confirm)\b",
        r"\bdouble[- ]check(?:ing)?\b",
        r"\b(?:checking|verifying|verification|sanity check)\b",
        r"\bcheck(?:ing)? (?:the|our|my|this|that|if|whether|again|it|by|answer|result|work)\b",
        r"\bverify (?:the|our|my|this|that|if|whether|it|by)\b",
        r"\b(?:plug(?:ging)?|substitut(?:e|ing)) (?:\w+ )?(?:it |this |them |these )?back\b",
        r"\b(?:this|that|it|which) (?:checks out|confirms|is consistent|matches)\b",
        r"\b(?:is|looks|seems) (?:correct|right)\b[.!]",
    ),
    "backtracking": (
        r"\bwait[,.!]? (?:no|that|this|i|actually|but|let|maybe|we|the)\b",
        r"\b(?:that|this|it)(?:'s| is| was) (?:not right|wrong|incorrect|not correct|a mistake)\b",
        r"\bi (?:made|have made) (?:a |an )?(?:mistake|error)\b",
        r"\b(?:let me|let's|let us|i(?:'ll| will)) (?:try|start) (?:again|over|another|a different)\b",
        r"\b(?:a|another) (?:different|new|better) (?:approach|method|way|strategy)\b",
        r"\b(?:let me|let's|let us) (?:re-?(?:think|consider|calculate|compute|evaluate|do|examine|visit)|"
        r"go back|correct)\b",
        r"\b(?:on second thought|scratch that|that doesn't work|this doesn't work|doesn't seem right)\b",
        r"\bactually,? (?:no|it|that|this|i|we|the)\b",
        r"\b(?:re-?calculat|recomput|reconsider)\w*\b",
    ),
    "subgoal": (
        r"\b(?:first|firstly),? (?:we|i|let|let's|calculate|compute|find|determine|add|identify)\b",
        r"\bstep \d+\b",
        r"\b(?:next|then|second|secondly|after that),? (?:we|i|let's|let me) (?:need|will|can|have|compute|"
        r"calculate|find|add)\b",
        r"\bwe (?:need|have|want) to (?:find|compute|calculate|determine|figure out)\b",
        r"\b(?:break|split|divide) (?:it|this|the problem|the task) (?:down|into)\b",
        r"\b(?:let's|let me|let us) (?:start|begin) (?:by|with)\b",
        r"\b(?:our|the) (?:goal|plan|first step|next step|strategy) is\b",
        r"\bto (?:solve|find|answer|compute) (?:this|the|it)[^.\n]{0,60}?,? (?:we|i) (?:need|first|will|should|can)\b",
    ),
    "enumeration": (
        r"\bcase \d+\b|\bcase (?:i|ii|iii|one|two)\b",
        r"\b(?:all|each|every) (?:possible|possibilities|combinations?|options?|cases?|candidates?)\b",
        r"\b(?:list|enumerate|go through|try|check|test) (?:all|each|every|the possible|some|different)\b",
        r"\b(?:possibilities|combinations|options|candidates) (?:are|include)\b",
        r"\bfor (?:each|every) (?:possible|value|case|combination|option|number)\b",
        r"(?:\bif \w+ ?= ?" + _NUM + r"\b[^\n]*\n?){2,}",
        r"(?:\b(?:try|trying|option|with)\b:? [^\n.]{0,40}?" + _NUM + r"[^\n]*\n?[^\n]*?){3,}",
    ),
}


@cache
def _compiled(kind: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in BEHAVIOUR_PATTERNS[kind]), re.IGNORECASE)


def find_behaviours(text: str) -> dict[str, list[tuple[int, int]]]:
    """Every match of each behaviour type in ``text`` as ``(start, end)`` spans, types with none omitted.

    >>> find_behaviours("First, we add 3 and 4. Wait, that is wrong. Let me check: 3+4=7.")
    {'verification': [(44, 56)], 'backtracking': [(23, 33)], 'subgoal': [(0, 9)]}
    """
    out = {}
    for kind in BEHAVIOUR_TYPES:
        spans = [m.span() for m in _compiled(kind).finditer(text)]
        if spans:
            out[kind] = spans
    return out


def classify(text: str) -> tuple[str, ...]:
    """The behaviour types present in ``text``, in ``BEHAVIOUR_TYPES`` order.

    >>> classify("Case 1: x = 2. Case 2: x = 3. Let me verify the first.")
    ('verification', 'enumeration')
    >>> classify("The answer is 7.")
    ()
    """
    return tuple(kind for kind in BEHAVIOUR_TYPES if _compiled(kind).search(text))


def behaviour_rates(
    texts: Sequence[str], correct: Sequence[bool] | None = None, prefix: str = "behaviour/"
) -> dict[str, float]:
    """Share of completions showing each type; with ``correct``, the share of completions with any type
    whose answer is correct (``effective``) and wrong (``superficial``), Oat's split of self-reflection.

    >>> r = behaviour_rates(["Let me check: ok", "Case 1: a. Case 2: b", "7"], [True, False, False])
    >>> r["behaviour/verification"], r["behaviour/enumeration"], r["behaviour/any"]
    (0.3333333333333333, 0.3333333333333333, 0.6666666666666666)
    >>> r["behaviour/effective"], r["behaviour/superficial"]
    (0.3333333333333333, 0.3333333333333333)
    """
    if not texts:
        raise ValueError("behaviour_rates needs at least one completion")
    n = len(texts)
    kinds = [classify(t) for t in texts]
    out = {f"{prefix}{k}": sum(k in ks for ks in kinds) / n for k in BEHAVIOUR_TYPES}
    out[f"{prefix}any"] = sum(bool(ks) for ks in kinds) / n
    if correct is not None:
        if len(correct) != n:
            raise ValueError(f"behaviour_rates: {len(correct)} verdicts for {n} completions")
        out[f"{prefix}effective"] = (
            sum(bool(ks) and bool(c) for ks, c in zip(kinds, correct, strict=True)) / n
        )
        out[f"{prefix}superficial"] = (
            sum(bool(ks) and not c for ks, c in zip(kinds, correct, strict=True)) / n
        )
    return out

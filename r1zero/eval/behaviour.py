"""Behaviour metrics of completions: reflection keywords, repetition, response length.

Pure functions on strings and numbers; no torch, no I/O. The trainer logs them every step and
``r1zero eval`` reports them per benchmark, always beside the step-0 (base model) baseline, because base
models already reflect a little before any RL (Dr. GRPO / oat-zero, 2025).

Reflection keyword presets (the lists are published facts; see ``docs/evaluation.md``):

- ``simplerl_zoo``: hkust-nlp/simpleRL-reason ``collect_results.py``. Upstream counts plain substrings
  (so "wait" also matches "awaiting"); here every phrase matches on word boundaries.
- ``open_reasoner_zero``: Open-Reasoner-Zero ``check_reflection_pattern`` (the only list logged during
  training upstream): ``wait,`` ``recheck[,\\s]`` ``retry`` ``alternatively,`` ``however,``, kept as the
  regular expressions upstream uses, with a leading word boundary added.
- ``dr_grpo``: sail-sg/understand-r1-zero ``analysis/keyword_count.py``.
- ``r1zero`` (the project default): the union of the three lists, word-bounded, plus the R1 paper's own
  "aha" phrasing ("wait, wait", "let me re-"), so that no published notion of reflection is missed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "REFLECTION_PRESETS",
    "LengthStats",
    "ReflectionStats",
    "count_reflection",
    "find_reflection",
    "length_stats",
    "ngram_repetition",
    "percentile",
    "reflection_pattern",
    "reflection_stats",
]

_SIMPLERL_ZOO = ("recheck", "rethink", "try again", "wait", "alternatively", "retry", "however")
_DR_GRPO = (
    "recheck",
    "rethink",
    "reassess",
    "reevaluate",
    "re-evaluate",
    "reevaluation",
    "re-examine",
    "reexamine",
    "reconsider",
    "reanalyze",
    "double-check",
    "check again",
    "think again",
    "verify again",
    "go over the steps",
)
# Open-Reasoner-Zero uses regular expressions (punctuation is part of the pattern); marked with "re:".
_ORZ = ("re:wait,", r"re:recheck[,\s]", "retry", "re:alternatively,", "re:however,")
_R1ZERO_EXTRA = ("let me re-", "wait, wait")

#: preset name -> keyword phrases. A phrase starting with ``re:`` is a regular expression.
REFLECTION_PRESETS: dict[str, tuple[str, ...]] = {
    "simplerl_zoo": _SIMPLERL_ZOO,
    "open_reasoner_zero": _ORZ,
    "dr_grpo": _DR_GRPO,
    "r1zero": tuple(dict.fromkeys(_SIMPLERL_ZOO + _DR_GRPO + _R1ZERO_EXTRA)),
}


def _phrase_regex(phrase: str) -> str:
    if phrase.startswith("re:"):
        return r"\b" + phrase[3:]
    body = re.escape(phrase).replace(r"\ ", r"\s+")
    # a trailing non-word character (e.g. "let me re-") cannot end on a word boundary
    tail = r"\b" if phrase[-1].isalnum() else ""
    return r"\b" + body + tail


@lru_cache(maxsize=64)
def reflection_pattern(preset_or_words: str | tuple[str, ...] = "r1zero") -> re.Pattern[str]:
    """Compile a case-insensitive, word-bounded pattern for a preset name or a tuple of phrases.

    Longer phrases are tried first so that "re-evaluate" is one hit, not "re" plus something.

    >>> bool(reflection_pattern("simplerl_zoo").search("Wait, 2+2 is 4"))
    True
    >>> bool(reflection_pattern("simplerl_zoo").search("awaiting the result"))
    False
    """
    if isinstance(preset_or_words, str):
        if preset_or_words not in REFLECTION_PRESETS:
            raise ValueError(
                f"unknown reflection preset {preset_or_words!r}; valid: {', '.join(REFLECTION_PRESETS)}"
            )
        words = REFLECTION_PRESETS[preset_or_words]
    else:
        words = preset_or_words
    if not words:
        raise ValueError("reflection keyword list is empty; give a preset name or at least one phrase")
    ordered = sorted(words, key=lambda w: -len(w))
    return re.compile("|".join(f"(?:{_phrase_regex(w)})" for w in ordered), re.IGNORECASE)


def find_reflection(text: str, preset: str | tuple[str, ...] = "r1zero") -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of every reflection keyword hit in ``text`` (for highlighting).

    >>> find_reflection("3+4=7. Wait, recheck: 7.", "simplerl_zoo")
    [(7, 11), (13, 20)]
    """
    return [m.span() for m in reflection_pattern(preset).finditer(text)]


def count_reflection(text: str, preset: str | tuple[str, ...] = "r1zero") -> int:
    """Number of reflection keyword hits in ``text``.

    >>> count_reflection("Wait, wait. Let me rethink; awaiting nothing.", "simplerl_zoo")
    3
    """
    return len(find_reflection(text, preset))


@dataclass(frozen=True)
class ReflectionStats:
    """Reflection rates over a set of completions.

    Attributes:
        per_response: Fraction of completions with at least one hit.
        per_1k_tokens: Hits per 1,000 completion tokens.
        hits: Total number of hits.
        per_response_correct: ``per_response`` among correct completions (None if there are none).
        per_response_incorrect: ``per_response`` among incorrect completions (None if there are none).
    """

    per_response: float
    per_1k_tokens: float
    hits: int
    per_response_correct: float | None = None
    per_response_incorrect: float | None = None

    def to_dict(self, prefix: str = "reflection/") -> dict[str, float]:
        out = {
            f"{prefix}per_response": self.per_response,
            f"{prefix}per_1k_tokens": self.per_1k_tokens,
            f"{prefix}hits": float(self.hits),
        }
        if self.per_response_correct is not None:
            out[f"{prefix}per_response_correct"] = self.per_response_correct
        if self.per_response_incorrect is not None:
            out[f"{prefix}per_response_incorrect"] = self.per_response_incorrect
        return out


def reflection_stats(
    texts: Sequence[str],
    lengths: Sequence[int],
    correct: Sequence[bool] | None = None,
    preset: str | tuple[str, ...] = "r1zero",
) -> ReflectionStats:
    """Reflection rate per response and per 1k tokens, optionally split into correct vs incorrect.

    Args:
        texts: Completion texts.
        lengths: Completion lengths in tokens (same order as ``texts``).
        correct: Verdict per completion; when given, the rate is also split by it.
        preset: Preset name (see ``REFLECTION_PRESETS``) or a tuple of phrases.

    >>> s = reflection_stats(["wait, no", "ok", "recheck it"], [100, 100, 300], [True, False, False])
    >>> round(s.per_response, 3), s.per_1k_tokens, s.per_response_correct, s.per_response_incorrect
    (0.667, 4.0, 1.0, 0.5)
    """
    if len(texts) != len(lengths) or (correct is not None and len(correct) != len(texts)):
        raise ValueError(
            f"texts ({len(texts)}), lengths ({len(lengths)}) and correct "
            f"({None if correct is None else len(correct)}) must have the same length"
        )
    counts = [count_reflection(t, preset) for t in texts]
    n = len(texts)
    total_tokens = sum(lengths)
    per_response = sum(c > 0 for c in counts) / n if n else 0.0
    per_1k = 1000.0 * sum(counts) / total_tokens if total_tokens else 0.0
    split_c = split_i = None
    if correct is not None:
        hit_c = [c > 0 for c, ok in zip(counts, correct, strict=True) if ok]
        hit_i = [c > 0 for c, ok in zip(counts, correct, strict=True) if not ok]
        split_c = sum(hit_c) / len(hit_c) if hit_c else None
        split_i = sum(hit_i) / len(hit_i) if hit_i else None
    return ReflectionStats(per_response, per_1k, sum(counts), split_c, split_i)


def ngram_repetition(tokens: Sequence[str] | str, n: int = 4) -> float:
    """Fraction of n-grams that repeat an earlier n-gram: 0 for varied text, near 1 for a loop.

    A string is split on whitespace. Sequences shorter than ``n`` have no n-grams and score 0.

    >>> ngram_repetition("a b c d a b c d a b c d", n=4)
    0.5555555555555556
    >>> ngram_repetition("the cat sat on the mat", n=2)
    0.0
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    items = tokens.split() if isinstance(tokens, str) else list(tokens)
    grams = [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]; NaN for no values.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([10, 20, 30, 40, 50], 10)
    14.0
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class LengthStats:
    """Completion-length statistics in tokens (the keys of ``metrics.jsonl``'s ``length/*``)."""

    mean: float
    p10: float
    p50: float
    p90: float
    max: float
    clip_ratio: float
    correct_mean: float | None = None
    incorrect_mean: float | None = None

    def to_dict(self, prefix: str = "length/") -> dict[str, float]:
        out = {
            f"{prefix}mean": self.mean,
            f"{prefix}p10": self.p10,
            f"{prefix}p50": self.p50,
            f"{prefix}p90": self.p90,
            f"{prefix}max": self.max,
            f"{prefix}clip_ratio": self.clip_ratio,
        }
        # NaN-free: keys for an empty split are omitted (see docs/run_format.md)
        if self.correct_mean is not None:
            out[f"{prefix}correct_mean"] = self.correct_mean
        if self.incorrect_mean is not None:
            out[f"{prefix}incorrect_mean"] = self.incorrect_mean
        return out


def length_stats(
    lengths: Sequence[int],
    correct: Sequence[bool] | None = None,
    truncated: Sequence[bool] | None = None,
) -> LengthStats:
    """Mean, p10/p50/p90, max, truncation ratio, and mean length of correct vs incorrect completions.

    >>> s = length_stats([10, 20, 30, 40], correct=[True, True, False, False], truncated=[False] * 3 + [True])
    >>> s.mean, s.p50, s.clip_ratio, s.correct_mean, s.incorrect_mean
    (25.0, 25.0, 0.25, 15.0, 35.0)
    """
    if not lengths:
        raise ValueError("length_stats needs at least one length")
    for name, seq in (("correct", correct), ("truncated", truncated)):
        if seq is not None and len(seq) != len(lengths):
            raise ValueError(f"{name} has {len(seq)} entries, lengths has {len(lengths)}")
    xs = [float(x) for x in lengths]
    mean = sum(xs) / len(xs)
    clip = sum(bool(t) for t in truncated) / len(xs) if truncated is not None else 0.0
    c_mean = i_mean = None
    if correct is not None:
        cs = [x for x, ok in zip(xs, correct, strict=True) if ok]
        is_ = [x for x, ok in zip(xs, correct, strict=True) if not ok]
        c_mean = sum(cs) / len(cs) if cs else None
        i_mean = sum(is_) / len(is_) if is_ else None
    return LengthStats(
        mean=mean,
        p10=percentile(xs, 10),
        p50=percentile(xs, 50),
        p90=percentile(xs, 90),
        max=max(xs),
        clip_ratio=clip,
        correct_mean=c_mean,
        incorrect_mean=i_mean,
    )

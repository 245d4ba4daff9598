"""Find the final answer in a model output: answer tag, boxed, "the answer is", GSM8K ``####``, last expression.

Rules, in order; the first that finds something wins:

1. ``<answer>…</answer>`` content (a ``\\boxed{}`` inside it is unwrapped). Several answer blocks that
   disagree are *conflicting*: the verifier refuses them rather than picking one (a policy could
   otherwise list every candidate).
2. The last ``\\boxed{…}`` / ``\\fbox{…}``, braces nested to any depth.
3. The last "the (final) answer is …".
4. The last GSM8K ``#### n``.
5. Free-form text: the last math expression (``$…$``, ``\\(…\\)``, ``\\[…\\]``; its last side when it is a
   chain of equalities), else the last number.

When the output has a think block, only the text after the last ``</think>`` is searched; an output
that opens ``<think>`` and never closes it has no answer. An answer written only while thinking is no
answer (the R1-Zero template asks for it after the reasoning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1zero.verifiers.format import strip_eos

__all__ = ["SOURCES", "Extraction", "extract_answer", "find_boxed"]

#: Where an extracted answer came from.
SOURCES = ("answer_tag", "boxed", "answer_is", "gsm8k", "final_expr")

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*", re.IGNORECASE)
_WORDS = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_GSM8K = re.compile(r"####\s*([^\n]+)")
_MATH_DELIMITER = re.compile(r"\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_MATH_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_NUMBER = re.compile(r"[-−]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s*/\s*\d+)?|[-−]?\.\d+")
# End of an "answer is" sentence: a period/semicolon not inside a number, or a line break.
_SENTENCE_END = re.compile(r"(?<!\d)\.(?!\d)|\.(?=\s|\Z)|;|\n")
# A number with one of these right before or after it is part of a bigger expression (free-form text only).
_GLUE_BEFORE = frozenset("^_{\\")
_GLUE_AFTER = frozenset("^_{}!")


@dataclass(frozen=True)
class Extraction:
    """An extracted answer.

    Attributes:
        answer: The answer text (stripped), or None when nothing answer-like was found.
        source: Which rule found it (one of :data:`SOURCES`), or None.
        conflicting: True when several answer blocks give different answers.
    """

    answer: str | None
    source: str | None
    conflicting: bool = False


def extract_answer(response: str) -> Extraction:
    """Extract the final answer from a whole model output.

    >>> extract_answer("<think>maybe 3</think> <answer>\\\\boxed{4}</answer>")
    Extraction(answer='4', source='answer_tag', conflicting=False)
    >>> extract_answer("so $x = \\\\frac{1}{2}$ and the answer is $\\\\boxed{\\\\frac{1}{2}}$.").answer
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 5 + 7 = 12 dollars.\\n#### 12").source
    'gsm8k'
    >>> extract_answer("<think>the answer is 4").answer is None  # only inside the think block
    True
    >>> extract_answer("<answer>4</answer> <answer>5</answer>").conflicting
    True
    """
    text = strip_eos(response)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return Extraction(None, None)
    for rule in (_from_answer_tags, _from_boxed, _from_answer_is, _from_gsm8k, _from_final_expression):
        found = rule(text)
        if found is not None:
            return found
    return Extraction(None, None)


def find_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{}``/``\\fbox{}``, with nested braces; None when there is none.

    >>> find_boxed(r"\\boxed{1} then \\boxed{\\frac{a}{b^{2}}}")
    '\\\\frac{a}{b^{2}}'
    >>> find_boxed(r"\\boxed{unclosed") is None
    True
    """
    starts = [match.end() for match in _BOXED.finditer(text)]
    if not starts:
        return None
    closing = _matching_braces(text)
    for start in reversed(starts):
        end = closing.get(start - 1)
        if end is not None:
            return text[start:end]
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Index of each unescaped ``{`` -> index of its ``}``, in one pass (linear even on 20,000 ``\\boxed{``)."""
    pairs, stack = {}, []
    for i, char in enumerate(text):
        if char in "{}" and i > 0 and text[i - 1] == "\\":
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def _from_answer_tags(text: str) -> Extraction | None:
    blocks = _ANSWER_BLOCK.findall(text)
    if not blocks:
        return None
    answers = [_unbox(block) for block in blocks]
    answers = [a for a in answers if a]
    if not answers:
        return Extraction(None, "answer_tag")
    distinct = {" ".join(a.split()) for a in answers}
    return Extraction(answers[-1], "answer_tag", conflicting=len(distinct) > 1)


def _unbox(block: str) -> str:
    """The answer inside an answer block: its boxed content, or what follows "the answer is", or all of it."""
    boxed = find_boxed(block)
    if boxed is not None:
        return boxed.strip()
    said = _from_answer_is(block)
    if said is not None and said.answer:
        return said.answer
    return _single_value_in_prose(block) or block.strip()


def _math_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, inner)`` of each ``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]`` with non-blank inner text.

    One pass over the delimiters (a lazy regex would rescan to the end from every unclosed opener:
    quadratic on hostile text such as 25,000 ``\\(``).

    >>> _math_spans(r"so $x=1$ and \\(y\\)")
    [(3, 8, 'x=1'), (13, 18, 'y')]
    """
    spans, opener, start, inner_start = [], None, 0, 0
    for match in _MATH_DELIMITER.finditer(text):
        token = match.group(0)
        if opener is None and token in _MATH_CLOSER:
            opener, start, inner_start = token, match.start(), match.end()
        elif opener is not None and token == _MATH_CLOSER[opener]:
            inner = text[inner_start : match.start()]
            if inner.strip():
                spans.append((start, match.end(), inner))
            opener = None
    return spans


def _blank_math(text: str) -> str:
    """``text`` with every math span replaced by spaces (same length)."""
    pieces, last = [], 0
    for start, end, _ in _math_spans(text):
        pieces += [text[last:start], " " * (end - start)]
        last = end
    return "".join([*pieces, text[last:]])


def _single_value_in_prose(block: str) -> str | None:
    """ "The total cost is $64." -> "64": a sentence with exactly one number or formula in it.

    A sentence with several ("it could be 12 or 13") is left whole, so the verifier sees the hedge.
    """
    prose = _blank_math(block)
    if len(_WORDS.findall(prose)) < 3:
        return None
    maths, numbers = _math_spans(block), _NUMBER.findall(prose)
    if len(maths) + len(numbers) != 1:
        return None
    found = _from_final_expression(block)
    return found.answer if found is not None else None


def _from_boxed(text: str) -> Extraction | None:
    boxed = find_boxed(text)
    if boxed is None:
        return None
    return Extraction(boxed.strip() or None, "boxed")


def _from_answer_is(text: str) -> Extraction | None:
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    end = _SENTENCE_END.search(_blank_math(rest))  # a period inside $…$ does not end the sentence
    answer = _strip_math_delimiters(rest[: end.start()] if end else rest)
    return Extraction(answer or None, "answer_is") if answer else None


def _from_gsm8k(text: str) -> Extraction | None:
    matches = _GSM8K.findall(text)
    if not matches:
        return None
    return Extraction(matches[-1].strip() or None, "gsm8k")


def _from_final_expression(text: str) -> Extraction | None:
    maths = _math_spans(text)
    numbers = list(_NUMBER.finditer(text))
    if maths and (not numbers or maths[-1][1] >= numbers[-1].end()):
        inner = maths[-1][2].rsplit("=", 1)[-1].strip()  # "3 + 4 = 7": the value is the last side
        if inner:
            return Extraction(inner, "final_expr")
    if numbers and not _is_fragment(text, numbers[-1]):
        return Extraction(numbers[-1].group(0).strip(), "final_expr")
    return None


def _is_fragment(text: str, number: re.Match) -> bool:
    """Whether a number is part of a bigger expression (an exponent, a subscript, glued to letters or braces).

    Free-form text such as ``…$^9`` or ``x_2`` must not give ``9`` or ``2`` as the final answer.

    >>> [_is_fragment(t, _NUMBER.search(t)) for t in ("so 9.", "a$^9", "x_2", "7th", "{3}", "(3)")]
    [False, True, True, True, True, False]
    """
    before = text[number.start() - 1] if number.start() > 0 else " "
    after = text[number.end()] if number.end() < len(text) else " "
    return before in _GLUE_BEFORE or before.isalpha() or after in _GLUE_AFTER or after.isalpha()


def _strip_math_delimiters(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) > len(left) + len(right):
            return answer[len(left) : -len(right)].strip()
    return answer

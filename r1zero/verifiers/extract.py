"""Find the final answer in a model output: answer tag, boxed, "the answer is", GSM8K ``####``, last expression.

Rules, in order; the first that finds something wins:

1. ``<answer>…</answer>`` content (a ``\\boxed{}`` inside it is unwrapped; an ``Answer:`` label, markdown
   bold and math delimiters around it are dropped; in a sentence, its last value). Several answer
   blocks that disagree are *conflicting*: the verifier refuses them rather than picking one (a policy
   could otherwise list every candidate); so is a different boxed or "final answer" after ``</answer>``.
2. The last group of ``\\boxed{…}`` / ``\\fbox{…}`` (boxes separated only by commas, "and", spacing:
   ``\\boxed{1}, \\boxed{2}``), braces nested to any depth; a group of different boxes is *several*
   answers, which the verifier compares as a list or refuses against a single-valued gold. A
   "final answer is …" written after the last box wins over it.
3. The last "the (final) answer is …".
4. The last GSM8K ``#### n``.
5. Free-form text: the whole text when it is one short formula (``\\frac{7}{3}``), else the last math
   expression (``$…$``, ``\\(…\\)``, ``\\[…\\]``; its last side when it is a chain of equalities), else the
   last number.

When the output has a think block, only the text after the last ``</think>`` is searched; an output
that opens ``<think>`` and never closes it has no answer. An answer written only while thinking is no
answer (the R1-Zero template asks for it after the reasoning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1zero.verifiers.format import strip_eos

__all__ = ["SOURCES", "Extraction", "boxed_group", "extract_answer", "find_boxed", "gold_boxes"]

#: Where an extracted answer came from.
SOURCES = ("answer_tag", "boxed", "answer_is", "gsm8k", "final_expr")

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
_BOXED = re.compile(r"\\+(?:boxed|fbox)\s*\{")  # "\\boxed{" (an escaped backslash) is a box too
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s*\**\s*(?:is|:|=)\s*:?\s*\**\s*", re.IGNORECASE)
_FINAL_ANSWER = re.compile(r"final\s+answer\s*\**\s*(?:is|:|=)", re.IGNORECASE)
# "Answer:", "**Final answer:**" opening an answer block.
_LABEL = re.compile(r"^\s*\**\s*(?:final\s+)?answer\s*\**\s*(?:[:：]\s*\**\s*|(?=\$|\\[(\[]))", re.IGNORECASE)
_HEDGE_WORD = re.compile(
    r"\b(?:or|either|maybe|possibly|perhaps|not sure|at least|at most|between|about|approximately|around"
    r"|roughly|than|range)\b",
    re.IGNORECASE,
)
# A wholly bold answer, "**6**" (not a power chain such as 9**9**9).
_BOLD = re.compile(r"\s*\*\*((?:(?!\*\*).)+?)\*\*\s*\.?\s*", re.DOTALL)
# What may stand between two boxes of one group: punctuation, spacing, "and", a short \text{…}, delimiters.
_BOX_GAP = re.compile(
    r"(?:[\s,;&$()\[\]{}]|\+{2,}|\\[(),;!\[\] ]|\\q?quad\b|\\text\s*\{[^{}\n]{0,40}\}|\b(?:and|or)\b|\\\\"
    r"|[A-Za-z](?:_\{?\w+\}?)?\s*=)*"
)
_GOLD_BOX_GAP = re.compile(r"\b(?:and|or)\b|,")
# A bare "=" (not part of <=, >=, !=, :=).
_BARE_EQUALS = re.compile(r"(?<![<>!:=\\])=(?!=)")
_WORDS = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_GSM8K = re.compile(r"####\s*([^\n]+)")
_MATH_DELIMITER = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|\\\(|\\\)|\\\[|\\\]")
_MATH_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_QUOTED = re.compile(r"\\?\"([^\"]+?)\\?\"", re.DOTALL)  # "…" or \"…\" around an answer
# A label of words before a colon, "Soucis : 2,74 $", "Total cost: 12": what follows is the value.
# (One word glued to its colon is not a label: "lambda: 0".)
_PROSE_LABEL = re.compile(
    r"\s*[^\W\d_]{2,}(?:\s+[^\W\d_]+){0,3}\s+:\s|\s*[^\W\d_]{2,}(?:\s+[^\W\d_]+){1,3}:\s"
)
# A number then a list separator right before a sentence's last value ("12, 13", "$12$ and $13$").
_LIST_BEFORE = re.compile(r"\d[\d.]*\s*(?:\$|\\\))?\s*(?:,|;|\band\b)\s*(?:\$|\\\()?\s*[-−]?\s*\Z")
_UNIT_AFTER = re.compile(r"\s*[a-zA-Z]{1,3}[²³]")
_MAX_PROSE_CHARS = 5000  # longer tag content is not searched for a sentence's value
_BARE_COMMANDS = re.compile(r"\\[a-zA-Z]+")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[a-zA-Z*]+\}(?:\{[lcr|]*\})?|\\[a-zA-Z]+")
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
        several: True when the answer is a group of different boxes joined with ", ".
    """

    answer: str | None
    source: str | None
    conflicting: bool = False
    several: bool = False


def extract_answer(response: str) -> Extraction:
    """Extract the final answer from a whole model output.

    >>> extract_answer("<think>maybe 3</think> <answer>\\\\boxed{4}</answer>")
    Extraction(answer='4', source='answer_tag', conflicting=False, several=False)
    >>> extract_answer("so $x = \\\\frac{1}{2}$ and the answer is $\\\\boxed{\\\\frac{1}{2}}$.").answer
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 5 + 7 = 12 dollars.\\n#### 12").source
    'gsm8k'
    >>> extract_answer("<think>the answer is 4").answer is None  # only inside the think block
    True
    >>> extract_answer("<answer>4</answer> <answer>5</answer>").conflicting
    True
    >>> extract_answer(r"so \\boxed{(0,3)}, \\boxed{(3,0)}")
    Extraction(answer='(0,3), (3,0)', source='boxed', conflicting=False, several=True)
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
    boxes = _boxes(text)
    return text[boxes[-1][1] : boxes[-1][2]] if boxes else None


def gold_boxes(text: str) -> list[str]:
    """The boxes that give a gold's answer: the last group of boxes, where words with a connector
    ("and", "or", a comma) may also stand between two boxes, and a last box left unclosed (to the end).

    Golds are trusted, so this is looser than :func:`boxed_group` for answers (math-verify's reading).

    >>> gold_boxes(r"\\boxed{1} papers and \\boxed{2} bins"), gold_boxes(r"\\boxed{1} no no no \\boxed{2}")
    (['1', '2'], ['2'])
    >>> gold_boxes(r"so $\\boxed{x = 1$")
    ['x = 1']
    """
    boxes = _boxes(text)
    group = boxes[-1:]
    for box in reversed(boxes[:-1]):
        gap = text[box[2] + 1 : group[0][0]]
        if len(gap) > 40 or not (_BOX_GAP.fullmatch(gap) or _GOLD_BOX_GAP.search(gap)):
            break
        group.insert(0, box)
    contents = [text[start:end].strip() for _, start, end in group]
    opened = list(_BOXED.finditer(text))
    if opened and (not boxes or opened[-1].start() > boxes[-1][0]):  # "\boxed{x = 1" never closed
        rest = _MATH_DELIMITER.sub("", text[opened[-1].end() :]).strip().rstrip(".").strip()
        if rest and rest.count("{") >= rest.count("}"):
            contents = [rest]
    return contents


def _boxes(text: str) -> list[tuple[int, int, int]]:
    """``(command start, content start, content end)`` of each complete box, in order."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return []
    closing = _matching_braces(text)
    boxes = []
    for match in matches:
        end = closing.get(match.end() - 1)
        if end is not None:
            boxes.append((match.start(), match.end(), end))
    return boxes


def boxed_group(text: str) -> tuple[list[str], int] | None:
    """Contents of the last group of boxes (separated only by commas, "and", spacing) and where it ends.

    >>> boxed_group(r"\\boxed{1} and \\boxed{2}")
    (['1', '2'], 23)
    >>> boxed_group(r"\\boxed{17}. Checking again, it is \\boxed{18}.")[0]
    ['18']
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        gap = text[box[2] + 1 : group[0][0]]
        if len(gap) > 80 or not _BOX_GAP.fullmatch(gap):
            break
        group.insert(0, box)
    return [text[start:end].strip() for _, start, end in group], boxes[-1][2] + 1


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
    unboxed = [_unbox(block) for block in blocks]
    unboxed = [(a, several) for a, several in unboxed if a]
    if not unboxed:
        return Extraction(None, "answer_tag")
    distinct = {" ".join(a.split()) for a, _ in unboxed}
    after = text.rsplit("</answer>", 1)[1] if "</answer>" in text else ""
    later = _from_boxed_or_final(after) if after.strip() else None
    if later is not None and later.answer:  # a different "final" answer after the tag
        distinct.add(" ".join(later.answer.split()))
    answer, several = unboxed[-1]
    conflicting = len(distinct) > 1 or any(_unbalanced_boxes(block) for block in blocks)
    return Extraction(answer, "answer_tag", conflicting=conflicting, several=several)


def _unbox(block: str) -> tuple[str, bool]:
    """The answer inside an answer block and whether it is several boxes: its boxed content, what follows
    "the answer is", the inside of math delimiters around all of it, the value of a sentence, or all of it.
    """
    block = _LABEL.sub("", block)
    if (bold := _BOLD.fullmatch(block)) is not None:  # "**6**"
        block = bold.group(1)
    boxed = _from_boxed(block)
    if boxed is not None and boxed.answer:
        return boxed.answer, boxed.several
    said = _from_answer_is(block)
    if said is not None and said.answer:
        return (_value_in_prose(said.answer) or said.answer), False
    stripped = _strip_math_delimiters(block)
    if (
        block.lstrip().startswith(("$", "\\(", "\\["))
        and stripped != block.strip()
        and not _math_spans(stripped)
    ):
        return stripped, False
    return _value_in_prose(block) or block.strip(), False


def _joined(contents: list[str]) -> tuple[str, bool]:
    distinct = list(dict.fromkeys(" ".join(c.split()) for c in contents if c.strip()))
    return (", ".join(distinct), True) if len(distinct) > 1 else (contents[-1].strip(), False)


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


def _value_in_prose(block: str) -> str | None:
    """ "The total cost is $64." -> "64": the last number or formula of a sentence (math-verify's reading).

    A sentence that hedges ("it could be 12 or 13", "maybe 4") is left whole, so the verifier sees it.
    """
    if len(block) > _MAX_PROSE_CHARS:
        return None
    prose = _blank_math(block)
    words = len(_WORDS.findall(_ENVIRONMENT.sub(" ", prose)))
    labelled = words and _PROSE_LABEL.match(prose) is not None
    if not (words >= 3 or labelled or (words and len(_math_spans(block)) == 1)) or _HEDGE_WORD.search(prose):
        return None
    found = _from_final_expression(block)
    if found is None or _LIST_BEFORE.search(block[: block.rfind(found.answer)]):
        return None  # "The values are 12, 13": a list of candidates, not one value
    return found.answer


def _from_boxed(text: str) -> Extraction | None:
    group = boxed_group(text)
    if group is None:
        return None
    final = list(_FINAL_ANSWER.finditer(text))
    if final and final[-1].start() > group[1]:  # "Final Answer: The final answer is $2,310$." after a box
        said = _from_answer_is(text)
        if said is not None:
            return said
    answer, several = _joined(group[0])
    return Extraction(answer or None, "boxed", conflicting=_unbalanced_boxes(text), several=several)


def _unbalanced_boxes(text: str) -> bool:
    """Several boxes among unbalanced braces (``\\boxed{5}}}} so \\boxed{6}``): which box is meant is
    unclear, and stray braces are a way to hide candidates from a brace matcher.

    >>> _unbalanced_boxes(r"\\boxed{5}}}} so \\boxed{6}"), _unbalanced_boxes(r"\\boxed{5}}}}"), _unbalanced_boxes(r"\\boxed{5}, \\boxed{6}")
    (True, False, False)
    """
    if len(_BOXED.findall(text)) < 2:
        return False
    braces = re.findall(r"(?<!\\)[{}]", text)
    return braces.count("{") != braces.count("}")


def _from_boxed_or_final(text: str) -> Extraction | None:
    """A box or a "final answer is" in ``text`` (what counts after ``</answer>``)."""
    found = _from_boxed(text)
    if found is None and _FINAL_ANSWER.search(text):
        found = _from_answer_is(text)
    return found


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
    bare = text.strip()
    if (
        len(bare) <= 200
        and "\\" in bare
        and not _MATH_DELIMITER.search(bare)
        and not _WORDS.findall(_BARE_COMMANDS.sub("", bare))
    ):
        return Extraction(bare, "final_expr")  # the whole output is one formula: \frac{7}{3}
    maths = _math_spans(text)
    numbers = list(_NUMBER.finditer(text))
    if maths and (not numbers or maths[-1][1] >= numbers[-1].end()):
        inner = _BARE_EQUALS.split(maths[-1][2])[-1].strip()  # "3 + 4 = 7": the value is the last side
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
    if _UNIT_AFTER.match(text, number.end()):  # "1,000.99m²": a unit, not a glued letter
        return before in _GLUE_BEFORE or before.isalpha()
    return before in _GLUE_BEFORE or before.isalpha() or after in _GLUE_AFTER or after.isalpha()


def _strip_math_delimiters(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    if (quoted := _QUOTED.fullmatch(answer)) is not None:  # 'The final answer is "$12$".'
        answer = quoted.group(1).strip().rstrip(".").strip()
    if (bold := _BOLD.fullmatch(answer)) is not None:
        answer = bold.group(1).strip().rstrip(".").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) > len(left) + len(right):
            return answer[len(left) : -len(right)].strip()
    return answer

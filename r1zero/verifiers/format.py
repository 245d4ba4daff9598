"""The R1-Zero format check: one ``<think>`` block, then one non-empty ``<answer>`` block, then nothing.

DeepSeek-R1 (2025, Table 1) asks the model to reason inside ``<think> </think>`` and answer inside
``<answer> </answer>``. Two prompt styles are common: the prompt ends with ``<think>`` (the completion
starts with the reasoning and only closes the tag) or the completion opens ``<think>`` itself; both are
accepted. Everything that lets a policy collect the format reward without the format is refused with a
reason: ``<think></think>a``, duplicated, nested or spammed tags, empty blocks, text between or after the
blocks. Tags are matched exactly; a look-alike such as ``<Answer>`` or ``< /think>`` counts as a broken tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EOS_TOKENS", "FORMAT_REASONS", "FormatCheck", "check_format", "strip_eos"]

#: End-of-sequence strings that may trail a decoded completion (Llama/Mistral, GPT-2/Qwen base, ChatML,
#: Llama 3, DeepSeek).
EOS_TOKENS = ("</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>")

#: Reasons a completion is not formatted (``ok`` when it is).
FORMAT_REASONS = (
    "ok",
    "empty",  # nothing but whitespace / EOS
    "malformed_tag",  # a tag look-alike (<Think>, < /answer>, <answer/>)
    "duplicate_tag",  # a tag appears more than once (spam, nesting, several answers)
    "no_think_close",  # no </think>
    "text_before_think",  # the completion opens <think> after other text
    "empty_think",  # nothing inside the think block
    "no_answer",  # no <answer>...</answer> after </think>
    "text_between",  # non-whitespace between </think> and <answer>
    "empty_answer",  # nothing inside the answer block
    "trailing_text",  # non-whitespace after </answer>
)

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# Anything that looks like a think/answer tag, in any case and spacing; exact tags are subtracted later.
_TAG_LIKE = re.compile(r"<\s*/?\s*(?:think|answer)\s*/?\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class FormatCheck:
    """Result of :func:`check_format`.

    Attributes:
        ok: Whether the completion keeps the R1-Zero format.
        reason: ``"ok"`` or one of :data:`FORMAT_REASONS` saying what is broken.
        think: The reasoning inside the think block (stripped), when the tags could be located.
        answer: The text inside the answer block (stripped), when the format is ok.
    """

    ok: bool
    reason: str
    think: str | None = None
    answer: str | None = None


def strip_eos(text: str) -> str:
    """Remove trailing whitespace and end-of-sequence tokens (a loop, not a regex: linear on any input).

    >>> strip_eos("<answer>4</answer> </s><|endoftext|>\\n")
    '<answer>4</answer>'
    """
    text = text.rstrip()
    while True:
        token = next((t for t in EOS_TOKENS if text.endswith(t)), None)
        if token is None:
            return text
        text = text[: -len(token)].rstrip()


def check_format(response: str) -> FormatCheck:
    """Check that ``response`` is ``[<think>] reasoning </think> <answer> answer </answer> [EOS]``.

    >>> check_format("<think>2+2=4</think> <answer>4</answer><|endoftext|>").ok
    True
    >>> check_format("2+2=4 </think>\\n<answer>4</answer>").ok  # the prompt ended with <think>
    True
    >>> check_format("<think></think><answer>4</answer>").reason
    'empty_think'
    >>> check_format("<think>hm</think> a").reason
    'no_answer'
    >>> check_format("<think>x</think><answer>4</answer><answer>5</answer>").reason
    'duplicate_tag'
    """
    text = strip_eos(response).strip()
    if not text:
        return FormatCheck(False, "empty")
    counts = {tag: text.count(tag) for tag in _TAGS}
    if len(_TAG_LIKE.findall(text)) != sum(counts.values()):
        return FormatCheck(False, "malformed_tag")
    if any(n > 1 for n in counts.values()):
        return FormatCheck(False, "duplicate_tag")
    if counts["</think>"] == 0:
        return FormatCheck(False, "no_think_close")
    think_part, after_think = text.split("</think>", 1)
    if counts["<think>"]:
        before, _, think_part = think_part.partition("<think>")
        if before.strip() or "<think>" in after_think:
            return FormatCheck(False, "text_before_think")
    if "<answer>" in think_part or "</answer>" in think_part:
        return FormatCheck(False, "duplicate_tag" if counts["<answer>"] else "no_answer")
    think = think_part.strip()
    if not think:
        return FormatCheck(False, "empty_think")
    return _check_answer_part(after_think, think)


def _check_answer_part(after_think: str, think: str) -> FormatCheck:
    between, opened, rest = after_think.partition("<answer>")
    if not opened or "</answer>" not in rest:
        return FormatCheck(False, "no_answer", think=think)
    if between.strip():
        return FormatCheck(False, "text_between", think=think)
    answer, _, trailing = rest.partition("</answer>")
    if not answer.strip():
        return FormatCheck(False, "empty_answer", think=think)
    if trailing.strip():
        return FormatCheck(False, "trailing_text", think=think)
    return FormatCheck(True, "ok", think=think, answer=answer.strip())

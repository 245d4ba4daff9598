"""``partial_list``: partial credit for a list answer, the share of the gold's items it names.

Load it by path: ``r1zero verify --verifier verifiers/partial_list.py --gold "1, 2, 3, 4" --response ...``.

An example of a verifier that sets its own reward: ``Verdict(own_reward=True)`` tells training (and
``apply_weights``) to use ``reward`` as it is, instead of recomputing 1/0 from ``correct`` and ``formatted``.
Items are compared as exact numbers or, failing that, as text with spaces removed; an answer that names
more items than the gold is ``rejected`` (listing everything must not earn credit).
"""

from __future__ import annotations

import re

from r1zero.verifiers import Verdict, register
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.support.guards import guard_answer, malformed
from r1zero.verifiers.support.normalize import normalize, parse_exact, split_top_level

#: Most items a gold list may have.
MAX_ITEMS = 50
_ITEM = re.compile(r"[\w\\{}^.+\-/ ()]+")  # a number, a name, a small formula; not "???"


def _items(text: str) -> list[str]:
    text = normalize(text)
    if text.startswith(r"\{") and text.endswith(r"\}"):
        text = text[2:-2]
    return [item for item in split_top_level(text) if item][:MAX_ITEMS]


def _key(item: str) -> object:
    value = parse_exact(item)
    return value.items if value is not None and value.kind == "number" else item.replace(" ", "")


@register("partial_list")
def verify_partial_list(response: str, gold: str, **meta) -> Verdict:
    """Reward = share of the gold's items in the answer; ``correct`` only when all are there.

    >>> verify_partial_list("<think>a</think> <answer>1, 3</answer>", "1, 2, 3, 4").reward
    0.5
    >>> verify_partial_list("<answer>1, 2, 3, 4, 5</answer>", "1, 2, 3, 4").reason
    'rejected'
    """
    formatted = check_format(response).ok
    answer = extract_answer(response).answer
    gold_items = _items(gold) if isinstance(gold, str) and guard_answer(gold) is None else []
    gold_keys = {_key(item) for item in gold_items}
    if not gold_keys or any(malformed(item) or not _ITEM.fullmatch(item) for item in gold_items):
        return Verdict(0.0, False, formatted, "bad_gold", answer, {"accuracy": 0.0}, own_reward=True)
    if answer is None:
        return Verdict(0.0, False, formatted, "no_answer", None, {"accuracy": 0.0}, own_reward=True)
    answer_keys = {_key(item) for item in _items(answer)}
    if len(answer_keys) > len(gold_keys):
        return Verdict(0.0, False, formatted, "rejected", answer, {"accuracy": 0.0}, own_reward=True)
    share = len(gold_keys & answer_keys) / len(gold_keys)
    reason = "correct" if share == 1.0 else "wrong"
    return Verdict(share, share == 1.0, formatted, reason, answer, {"accuracy": share}, own_reward=True)

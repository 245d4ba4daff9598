"""Step-0 probe: how a base model behaves on the demo task (list_sum, 5-8 digits) before any RL.

A base gives zero-RL something to find when, under the demo template at temperature 1: strict accuracy
is above 0.05 (a reward signal) and below 0.5 (room to learn); worked answers are 10-40% of samples;
accuracy given worked is at least 2x accuracy given direct; the format rate has room to grow.
``probe_base`` measures exactly these (plus length, reflection and the plain-form accuracy) with plain
Hugging Face ``generate``, so the trainer and eval can reuse it.

Definitions (pure functions below, each with an example):
- *strict* (``score_strict``): the completion (what follows the prompt's ``Assistant:``) is
  ``<think> reasoning </think> <answer>N</answer>`` with no other tag, and N equals the gold. This is the
  R1-Zero rule reward with no format bonus.
- *formatted*: the same shape, whatever N is.
- *worked* (``corpus.is_worked``): at least two ``=`` steps; otherwise *direct*.
- *reflection*: the word ``wait`` (word boundary, any case) appears.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from r1zero.models.corpus import is_worked, list_sum_question
from r1zero.models.tiny import render_demo_prompt

__all__ = ["ProbeSample", "demo_problems", "probe_base", "score_strict", "summarize"]

_STRICT = re.compile(r"(?s)\s*<think>(?P<think>[^<]*)</think>\s*<answer>\s*(?P<answer>[^<]*?)\s*</answer>\s*")
_WAIT = re.compile(r"\bwait\b", re.IGNORECASE)
_PLAIN_ANSWER = re.compile(r"the answer is (-?\d+)")


@dataclass(frozen=True)
class ProbeSample:
    """One sampled completion and how it scored."""

    question: str
    gold: int
    completion: str
    n_tokens: int
    formatted: bool
    correct: bool
    worked: bool
    wait: bool


def score_strict(completion: str, gold: int, think_opened: bool = False) -> tuple[bool, bool]:
    """``(formatted, correct)`` of a completion: ``<think> reasoning </think> <answer>N</answer>``, nothing more.

    Args:
        completion: The generated text after the prompt.
        gold: The right answer.
        think_opened: The prompt already ends with ``<think>`` (then the completion must not reopen it).

    >>> score_strict(" <think> 3+4=7, 7+1=8, the answer is 8. </think> <answer>8</answer>", 8)
    (True, True)
    >>> score_strict(" <think> the answer is 9. </think> <answer>9</answer>", 8)
    (True, False)
    >>> score_strict(" the answer is 8.", 8)
    (False, False)
    >>> score_strict(" the answer is 8. </think> <answer>8</answer>", 8, think_opened=True)
    (True, True)
    """
    if think_opened:
        completion = "<think>" + completion
    match = _STRICT.fullmatch(completion)
    if match is None:
        return False, False
    answer = match.group("answer")
    return True, answer.lstrip("-").isdigit() and int(answer) == gold


def demo_problems(n: int, seed: int, min_len: int = 5, max_len: int = 8) -> list[tuple[str, int]]:
    """``n`` seeded list-sum problems ``(question, gold)`` with ``min_len``-``max_len`` single digits.

    >>> demo_problems(1, seed=0, min_len=3, max_len=3)
    [('What is 7+1+5?', 13)]
    """
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        numbers = [
            rng.randint(1, 9) for _ in range(rng.randint(min_len, max_len))
        ]  # as the list_sum generator
        problems.append((list_sum_question(numbers), sum(numbers)))
    return problems


def _truncate(completion: str) -> str:
    """Cut a completion after its first ``</answer>`` (the rollout engines stop there too)."""
    end = completion.find("</answer>")
    return completion if end < 0 else completion[: end + len("</answer>")]


@torch.no_grad()
def _sample(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        gen = model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]  # [b, new]
        for row in new:
            text = _truncate(tokenizer.decode(row, skip_special_tokens=True))
            out.append((text, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    return out


def summarize(samples: list[ProbeSample]) -> dict[str, float]:
    """Aggregate figures of probe samples (rates in [0, 1]; lengths in tokens)."""

    def rate(items: list[ProbeSample], attr: str) -> float:
        return sum(getattr(s, attr) for s in items) / len(items) if items else float("nan")

    worked = [s for s in samples if s.worked]
    direct = [s for s in samples if not s.worked]
    return {
        "n": len(samples),
        "accuracy": rate(samples, "correct"),
        "format_rate": rate(samples, "formatted"),
        "worked_fraction": len(worked) / len(samples),
        "accuracy_worked": rate(worked, "correct"),
        "accuracy_direct": rate(direct, "correct"),
        "format_rate_worked": rate(worked, "formatted"),
        "mean_length_tokens": sum(s.n_tokens for s in samples) / len(samples),
        "mean_length_chars": sum(len(s.completion) for s in samples) / len(samples),
        "reflection_rate": rate(samples, "wait"),
    }


def probe_base(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    n: int = 512,
    seed: int = 0,
    max_new_tokens: int = 128,
    batch_size: int = 64,
) -> dict:
    """Sample ``n`` demo problems once each at temperature 1 under ``DEMO_TEMPLATE`` and summarise.

    Also samples ``n // 2`` problems in the plain pretraining form (``User: q`` / ``Assistant:``) and
    reports ``plain_accuracy`` (``the answer is N`` right) and ``plain_worked_fraction``: RL may trade
    this away, so it is the baseline to track.

    Returns a dict of figures (see ``summarize``) plus ``examples`` (first 8 samples as dicts).
    """
    torch.manual_seed(seed)
    problems = demo_problems(n, seed=seed)
    prompts = [render_demo_prompt(q) for q, _ in problems]
    samples = []
    for (question, gold), (text, n_tokens) in zip(
        problems, _sample(model, tokenizer, prompts, max_new_tokens, batch_size), strict=True
    ):
        formatted, correct = score_strict(text, gold)
        samples.append(
            ProbeSample(
                question, gold, text, n_tokens, formatted, correct, is_worked(text), bool(_WAIT.search(text))
            )
        )
    result: dict = summarize(samples)
    plain = problems[: n // 2]
    plain_out = _sample(
        model, tokenizer, [f"User: {q}\nAssistant:" for q, _ in plain], max_new_tokens, batch_size
    )
    hits = [
        (m := _PLAIN_ANSWER.search(text)) is not None and int(m.group(1)) == gold
        for (_, gold), (text, _) in zip(plain, plain_out, strict=True)
    ]
    result["plain_accuracy"] = sum(hits) / max(1, len(hits))
    result["plain_worked_fraction"] = sum(is_worked(t) for t, _ in plain_out) / max(1, len(plain_out))
    result["examples"] = [s.__dict__ for s in samples[:8]]
    return result

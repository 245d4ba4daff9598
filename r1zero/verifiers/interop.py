"""Use any r1zero verifier as a reward in TRL's ``GRPOTrainer`` or as a verl ``compute_score``.

Neither library is imported: the adapters only match their calling conventions.

TRL (``GRPOTrainer(reward_funcs=[...])``) calls ``reward_func(prompts=..., completions=..., **columns)``
where every other dataset column arrives as a keyword argument holding one value per completion;
completions are strings, or (conversational datasets) lists of ``{"role", "content"}`` messages::

    from r1zero.verifiers.interop import as_trl_reward
    trainer = GRPOTrainer(model=..., reward_funcs=[as_trl_reward("math", gold_column="solution")], ...)

verl (``custom_reward_function.path/name`` in its config) calls
``compute_score(data_source, solution_str, ground_truth, extra_info=None)``::

    # my_reward.py, named in verl's config as custom_reward_function.path=my_reward.py, name=compute_score
    from r1zero.verifiers.interop import as_verl_compute_score
    compute_score = as_verl_compute_score("math")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from r1zero.verifiers.base import Verdict, Verifier, get_verifier
from r1zero.verifiers.pool import call_verifier, verify_batch
from r1zero.verifiers.reward import RewardWeights, apply_weights

__all__ = ["as_trl_reward", "as_verl_compute_score", "completion_text"]

#: Keys of a dict-valued ground truth (verl) that may hold the gold answer, in order of preference.
GOLD_KEYS = ("answer", "target", "ground_truth", "solution")


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a list of messages (their contents joined).

    >>> completion_text([{"role": "assistant", "content": "<answer>4</answer>"}])
    '<answer>4</answer>'
    >>> completion_text("plain")
    'plain'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, list | tuple):
        return "".join(completion_text(message) for message in completion)
    raise ValueError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def as_trl_reward(
    name_or_fn: str | Verifier,
    *,
    gold_column: str = "answer",
    meta_columns: Sequence[str] = (),
    weights: RewardWeights | None = None,
    workers: int = 0,
    timeout: float = 5.0,
) -> Callable[..., list[float]]:
    """A TRL ``GRPOTrainer`` reward function ``(prompts, completions, **kwargs) -> list[float]``.

    Args:
        name_or_fn: A verifier spec (see ``get_verifier``) or a verifier callable.
        gold_column: Dataset column holding the gold answer.
        meta_columns: Dataset columns passed to the verifier as meta (e.g. ``("numbers",)`` for countdown).
            A column named ``meta`` holding dicts is always merged in.
        weights: Recompute the reward from correct/formatted with these weights; None keeps the verifier's.
        workers: 0 scores in this process (errors still become reward 0); >= 1 uses ``verify_batch``
            worker processes with a per-item ``timeout`` (needs a spec string).
        timeout: Seconds per item when ``workers >= 1``.

    >>> reward = as_trl_reward("integer")
    >>> reward(prompts=["2+2?", "2+3?"], completions=[[{"role": "assistant", "content": "<answer>4</answer>"}],
    ...        [{"role": "assistant", "content": "<answer>4</answer>"}]], answer=["4", "5"])
    [1.0, 0.0]
    """
    if workers and not isinstance(name_or_fn, str):
        raise ValueError(
            "workers >= 1 needs the verifier as a spec string (name, 'module:function' or .py path)"
        )
    verifier = get_verifier(name_or_fn) if isinstance(name_or_fn, str) else name_or_fn

    def reward(
        prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
    ) -> list[float]:
        if gold_column not in kwargs:
            columns = sorted(k for k in kwargs if k not in ("completion_ids", "trainer_state"))
            raise ValueError(
                f"reward needs the dataset column {gold_column!r} (gold_column); columns: {columns}"
            )
        texts = [completion_text(c) for c in completions]
        golds = [str(g) for g in kwargs[gold_column]]
        metas = [_trl_meta(kwargs, meta_columns, k) for k in range(len(texts))]
        if workers:
            verdicts = verify_batch(name_or_fn, texts, golds, metas=metas, workers=workers, timeout=timeout)
        else:
            verdicts = [call_verifier(verifier, t, g, m) for t, g, m in zip(texts, golds, metas, strict=True)]
        return [_weighted(v, weights).reward for v in verdicts]

    reward.__name__ = f"r1zero_{_label(name_or_fn)}"  # TRL logs each reward under its function's name
    return reward


def _trl_meta(kwargs: dict, meta_columns: Sequence[str], k: int) -> dict:
    meta = (
        dict(kwargs["meta"][k]) if isinstance(kwargs.get("meta"), list | tuple) and kwargs["meta"][k] else {}
    )
    for column in meta_columns:
        if column not in kwargs:
            raise ValueError(f"meta column {column!r} is not in the batch; columns: {sorted(kwargs)}")
        meta[column] = kwargs[column][k]
    return meta


def as_verl_compute_score(
    name_or_fn: str | Verifier, *, weights: RewardWeights | None = None, return_dict: bool = False
) -> Callable[..., float | dict[str, float]]:
    """A verl ``compute_score(data_source, solution_str, ground_truth, extra_info=None)``.

    ``ground_truth`` may be a string (or number) or a dict such as TinyZero's countdown
    ``{"target": 22, "numbers": [3, 5, 7]}``: the gold is taken from the first of ``GOLD_KEYS`` present
    and the other keys, with ``extra_info``'s, are passed as meta. Returns the reward, or with
    ``return_dict`` ``{"score", "acc", "formatted"}`` (verl logs the extra keys).

    >>> score = as_verl_compute_score("countdown")
    >>> score("countdown", "<answer>3*5+7</answer>", {"target": 22, "numbers": [3, 5, 7]})
    1.0
    """
    verifier = get_verifier(name_or_fn) if isinstance(name_or_fn, str) else name_or_fn

    def compute_score(
        data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **_: Any
    ) -> float | dict[str, float]:
        gold, meta = _split_ground_truth(ground_truth)
        meta = {**(extra_info if isinstance(extra_info, dict) else {}), **meta}
        verdict = _weighted(call_verifier(verifier, solution_str, gold, meta), weights)
        if return_dict:
            return {
                "score": verdict.reward,
                "acc": float(verdict.correct),
                "formatted": float(verdict.formatted),
            }
        return verdict.reward

    compute_score.__name__ = "compute_score"
    return compute_score


def _split_ground_truth(ground_truth: Any) -> tuple[str, dict]:
    if isinstance(ground_truth, dict):
        key = next((k for k in GOLD_KEYS if k in ground_truth), None)
        meta = {k: _plain(v) for k, v in ground_truth.items() if k != key}
        return ("" if key is None else str(_plain(ground_truth[key]))), meta
    return str(_plain(ground_truth)), {}


def _plain(value: Any) -> Any:
    """numpy scalars/arrays (verl stores parquet rows as numpy) -> Python numbers/lists."""
    return value.tolist() if hasattr(value, "tolist") else value


def _weighted(verdict: Verdict, weights: RewardWeights | None) -> Verdict:
    return verdict if weights is None else apply_weights(verdict, weights)


def _label(name_or_fn: str | Verifier) -> str:
    if isinstance(name_or_fn, str):
        return name_or_fn.rsplit("/", 1)[-1].replace(".py", "").replace(":", "_")
    return getattr(name_or_fn, "__name__", "verifier")

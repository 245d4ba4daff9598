"""Rule-based rewards for R1-Zero-style RL. Knows only strings; imports no torch.

>>> from r1zero.verifiers import get_verifier
>>> get_verifier("math")("<think>2+2</think> <answer>4</answer>", "4").correct
True
"""

from r1zero.verifiers.base import (
    REASONS,
    Verdict,
    Verifier,
    available_verifiers,
    get_verifier,
    register,
    registered_verifier,
)

__all__ = [
    "REASONS",
    "Verdict",
    "Verifier",
    "available_verifiers",
    "get_verifier",
    "register",
    "registered_verifier",
    "verify_batch",
]


def __getattr__(name: str):
    # verify_batch lives in the process-pool module; imported lazily to keep `import r1zero.verifiers` light.
    if name == "verify_batch":
        from r1zero.verifiers.pool import verify_batch

        return verify_batch
    raise AttributeError(name)

"""A test verifier whose reward varies on a random-init model: correct when the completion holds >= 2 digits.

Used only so that trainer tests get groups with unequal rewards (non-zero advantages and gradients)
from an untrained model; it goes through the real plug-in path (``--data.verifier FILE.py``).
"""

from r1zero.verifiers import Verdict


def verify(response: str, gold: str, **meta) -> Verdict:
    correct = sum(ch.isdigit() for ch in response) >= 2
    return Verdict(float(correct), correct, "</answer>" in response, "correct" if correct else "wrong")

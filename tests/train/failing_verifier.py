"""A test verifier that raises on every item (as one whose dependency or service is gone would).

The pool turns each raise into ``Verdict(reason="error")``; the trainer must stop rather than train on
rewards of 0 to the end.
"""

from r1zero.verifiers import Verdict


def verify(response: str, gold: str, **meta) -> Verdict:
    raise RuntimeError("grading service unreachable")

"""What the built-in verifiers are made of: number and LaTeX normalisation, size guards, the sympy and
math-verify layer, intervals, and the subprocess sandbox that bounds a call's wall-clock time.

Internal: these modules may change with the verifiers that use them. None registers a verifier, and
importing this package imports none of them (``symbolic`` loads sympy and math-verify, ~0.4 s).
"""

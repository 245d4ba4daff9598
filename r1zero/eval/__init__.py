"""Evaluation, behaviour analytics, plots and reports.

Pure metrics live in ``behaviour`` (reflection, repetition, length) and ``metrics`` (pass@k, maj@k,
bootstrap intervals); ``harness`` runs a model on benchmarks; ``plots``, ``aha`` and ``report`` read a run
directory (see ``docs/run_format.md``). Submodules are imported on demand so that this package stays light.
"""

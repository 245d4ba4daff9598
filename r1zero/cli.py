"""The ``r1zero`` command: a thin dispatcher to each part's own command-line module.

Each subcommand lives beside the code it drives and exposes ``main(argv: list[str]) -> int``;
modules are imported only when their command runs, so ``r1zero verify`` never imports torch. Output
piped into a reader that stops early (``r1zero train --help | head``) ends the command quietly.

An input error escaping a command (``ValueError``, ``FileNotFoundError``, ``json.JSONDecodeError``, or
one of r1zero's own error classes) prints one line, ``r1zero <command>: <message>``, and exits 2; any
other exception is a bug and keeps its traceback. Set ``R1ZERO_DEBUG=1`` to see the traceback of
input errors too.
"""

from __future__ import annotations

import importlib
import os
import sys

#: subcommand -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("r1zero.verifiers.cli", "score responses against gold answers"),
    "data": ("r1zero.data.cli", "generate task files, inspect datasets"),
    "pretrain": ("r1zero.models.pretrain", "pretrain the built-in tiny base model"),
    "train": ("r1zero.train.cli", "zero-RL training (GRPO and variants); no arguments runs the CPU demo"),
    "plan": ("r1zero.train.plan_cli", "per-GPU memory of a training preset: will it fit?"),
    "eval": ("r1zero.eval.cli", "evaluate a model or a run's checkpoints on benchmarks"),
    "plot": ("r1zero.eval.plots", "plot a run's curves (accuracy, length, reflection)"),
    "report": ("r1zero.eval.report", "write a self-contained HTML report of a run"),
    "rm": ("r1zero.reward_model.cli", "train / evaluate a learned (Bradley-Terry) reward model"),
    "serve-rollouts": (
        "r1zero.rollout.serve",
        "serve vLLM rollouts over HTTP (--rollout.backend vllm-server)",
    ),
    "export": ("r1zero.train.export", "write a run's checkpoint as one Hugging Face model directory"),
}


def _usage() -> str:
    lines = ["usage: r1zero <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'r1zero <command> --help' for a command's options."]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Turn off transformers' and huggingface_hub's own progress bars and their advisory warnings, which
    break r1zero's progress bar; ``HF_HUB_DISABLE_PROGRESS_BARS`` or ``TRANSFORMERS_VERBOSITY`` set in the
    environment win. Also set in the environment, for worker processes."""
    bars = os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    bars_off = bars.upper() in ("1", "ON", "YES", "TRUE")  # huggingface_hub's reading of the variable
    quiet = os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error") == "error"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers.utils import logging as hf_logging

    if bars_off:
        hf_logging.disable_progress_bar()  # transformers' bars and huggingface_hub's
    if quiet:
        hf_logging.set_verbosity_error()


def _stdout_closed() -> bool:
    """Whether the reader of stdout has gone (a pipe's read end closed), as opposed to another pipe."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return bool(poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows) or no real stdout: assume it is
        return True


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # output that fit in the buffer meets a closed pipe here
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # the reader stopped early: send what is still buffered nowhere, and exit without a traceback
        # (https://docs.python.org/3/library/signal.html#note-on-sigpipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from r1zero import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"r1zero: unknown command {command!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"r1zero: command {command!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except Exception as exc:
        if not _is_input_error(exc) or os.environ.get("R1ZERO_DEBUG", "") not in ("", "0"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"r1zero {command}: {message}", file=sys.stderr)
        return 2


def _is_input_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports bad input (a file, a value, a setting) rather than a bug in r1zero.

    ``json.JSONDecodeError`` is a ``ValueError``; r1zero's ``DataError`` and ``RowError`` are too.
    """
    if isinstance(exc, ValueError | FileNotFoundError):
        return True
    own = ("CheckpointError", "TrainingError", "VerifierTimeout", "VerifierCrash")
    return type(exc).__module__.startswith("r1zero.") and type(exc).__name__ in own


if __name__ == "__main__":
    raise SystemExit(main())

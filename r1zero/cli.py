"""The ``r1zero`` command: a thin dispatcher to each part's own command-line module.

Each subcommand lives beside the code it drives and exposes ``main(argv: list[str]) -> int``;
modules are imported only when their command runs, so ``r1zero verify`` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("r1zero.verifiers.cli", "score responses against gold answers"),
    "data": ("r1zero.data.cli", "generate task files, inspect datasets"),
    "pretrain": ("r1zero.models.pretrain", "pretrain the built-in tiny base model"),
    "train": ("r1zero.train.cli", "zero-RL training (GRPO and variants); no arguments runs the CPU demo"),
    "eval": ("r1zero.eval.cli", "evaluate a model or a run's checkpoints on benchmarks"),
    "plot": ("r1zero.eval.plots", "plot a run's curves (accuracy, length, reflection)"),
    "report": ("r1zero.eval.report", "write a self-contained HTML report of a run"),
    "rm": ("r1zero.reward_model.cli", "train / evaluate a learned (Bradley-Terry) reward model"),
}


def _usage() -> str:
    lines = ["usage: r1zero <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'r1zero <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

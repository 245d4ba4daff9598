"""``r1zero rm``: train and evaluate a learned (Bradley-Terry) reward model.

r1zero rm train --data prefs.jsonl --out runs/rm [--epochs 1 --lr 3e-4 ...]
r1zero rm eval --model runs/rm --data prefs.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from r1zero.reward_model.train import RewardModelConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1zero rm", description="Train and evaluate a learned reward model."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fit a reward model on preference pairs, save it with rm.json")
    train.add_argument(
        "--data", required=True, help="preference file (.jsonl/.json/.parquet: prompt, chosen, rejected)"
    )
    train.add_argument("--out", required=True, help="output directory")
    for f in fields(RewardModelConfig):
        train.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            help=f"(default {f.default})",
        )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = commands.add_parser("eval", help="pairwise accuracy (overall and per kind) as JSON on stdout")
    ev.add_argument("--model", required=True, help="reward model directory (from r1zero rm train)")
    ev.add_argument("--data", required=True, help="preference file")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--threads", type=int, default=1, help="CPU threads for torch (0 = torch's default)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_jsonl(args.data)
        return {"train": _train, "eval": _eval}[args.command](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"r1zero rm {args.command}: {exc}", file=sys.stderr)
        return 2


def _check_jsonl(path: str) -> None:
    """Raise ValueError naming the file and line of the first broken row of a ``.jsonl`` preference file
    (not JSON, not an object, or a missing or non-string prompt/chosen/rejected); other formats pass."""
    if not path.endswith(".jsonl"):
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a row must be a JSON object, got {type(row).__name__}")
            for column in ("prompt", "chosen", "rejected"):
                if column not in row:
                    raise ValueError(
                        f"{path}:{number}: missing field {column!r} (a row needs prompt, chosen, rejected)"
                    )
                if not isinstance(row[column], str):
                    raise ValueError(f"{path}:{number}: field {column!r} must be a string")


def _train(args: argparse.Namespace) -> int:
    from r1zero.reward_model.train import train_reward_model

    config = RewardModelConfig(**{f.name: getattr(args, f.name) for f in fields(RewardModelConfig)})
    stats = train_reward_model(args.data, args.out, config, progress=not args.no_progress)
    summary = {k: v for k, v in stats.items() if k != "history"}
    print(json.dumps({"out": args.out, **summary}, indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from r1zero.reward_model.pairs import evaluate_pairs, load_pairs
    from r1zero.reward_model.score import LearnedReward

    if args.threads:
        torch.set_num_threads(args.threads)
    reward = LearnedReward.from_pretrained(args.model)
    result = evaluate_pairs(reward, load_pairs(args.data), batch_size=args.batch_size)
    print(json.dumps({"model": args.model, "data": args.data, **result}, indent=1))
    return 0

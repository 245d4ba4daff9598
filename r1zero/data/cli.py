"""``r1zero data``: generate task files, inspect problem sets, list what is available.

r1zero data generate countdown --n 1000 --difficulty 3 --seed 0 --out countdown.jsonl
r1zero data inspect math500_test.jsonl --verifier math [--tokenizer DIR] [--template r1zero]
r1zero data list
r1zero data preferences --n 4000 --seed 0 --out prefs.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys

from r1zero.data.problem import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1zero data", description="Generate and inspect problem sets.")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a generated task to JSONL (same seed, same bytes)")
    gen.add_argument("task", help="task generator name (r1zero data list)")
    gen.add_argument("--n", type=int, default=1000, help="number of problems (default 1000)")
    gen.add_argument(
        "--difficulty", default=None, help="level or inclusive range like 5-8 (default: the task's)"
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", default=None, help="output JSONL file (default: standard output)")

    ins = commands.add_parser("inspect", help="counts, answer types, prompt lengths, gold parseability")
    ins.add_argument("source", help="a file, a task generator spec (list_sum:n=500), or a dataset name")
    ins.add_argument(
        "--verifier", default=None, help="check golds with this verifier ('none': skip; default: each row's)"
    )
    ins.add_argument("--tokenizer", default=None, help="tokenizer directory: prompt lengths in its tokens")
    ins.add_argument("--template", default="none", help="template to render prompts with before measuring")
    ins.add_argument("--question", default=None, help="question column of a file")
    ins.add_argument("--answer", default=None, help="answer column of a file")
    ins.add_argument(
        "--answer-rule", default=None, help="answer rule for a file (as_is, after_hashes, last_boxed, ...)"
    )
    ins.add_argument(
        "--spec", default=None, help="apply a standard dataset's columns and answer rule to a file"
    )
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.add_argument("--no-progress", action="store_true", help="no progress bar")

    commands.add_parser("list", help="task generators, standard datasets and templates")

    pref = commands.add_parser(
        "preferences", help="write list_sum preference pairs (chosen/rejected) for a reward model to JSONL"
    )
    pref.add_argument("--n", type=int, default=4000, help="number of pairs (default 4000)")
    pref.add_argument("--seed", type=int, default=0)
    pref.add_argument("--difficulty", default="5-8", help="list length or range (default 5-8)")
    pref.add_argument("--out", default=None, help="output JSONL file (default: standard output)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"generate": _generate, "inspect": _inspect, "list": _list, "preferences": _preferences}
        return commands[args.command](args)
    except (DataError, ValueError) as exc:
        print(f"r1zero data {args.command}: {exc}", file=sys.stderr)
        return 2


def _generate(args: argparse.Namespace) -> int:
    from r1zero.data.generators import generate
    from r1zero.data.problem import problems_to_jsonl, write_problems

    problems = generate(args.task, args.n, difficulty=args.difficulty, seed=args.seed)
    if args.out:
        write_problems(problems, args.out)
        print(f"wrote {len(problems)} {args.task} problems to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(problems_to_jsonl(problems))
    return 0


def _preferences(args: argparse.Namespace) -> int:
    from r1zero.data.preferences import generate_preferences, preferences_to_jsonl, write_preferences

    rows = generate_preferences(args.n, seed=args.seed, difficulty=args.difficulty)
    if args.out:
        write_preferences(rows, args.out)
        print(f"wrote {len(rows)} preference pairs to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(preferences_to_jsonl(rows))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from r1zero.data.sources import load_problems
    from r1zero.data.summary import format_summary, summarize

    mapping = {
        "question": args.question,
        "answer": args.answer,
        "answer_rule": args.answer_rule,
        "spec": args.spec,
    }
    problems = load_problems(args.source, **{k: v for k, v in mapping.items() if v is not None})
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    summary = summarize(
        problems,
        source=str(args.source),
        verifier=None if args.verifier in (None, "none") else args.verifier,
        check_golds=args.verifier != "none",
        tokenizer=tokenizer,
        template=args.template,
        progress=not args.no_progress,
    )
    print(
        json.dumps(summary.to_dict(), indent=1, ensure_ascii=False) if args.json else format_summary(summary)
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from r1zero.data.generators import available_generators, get_generator
    from r1zero.data.hub import DATASETS
    from r1zero.data.templates import available_templates, get_template

    print("task generators (r1zero data generate NAME):")
    for name in available_generators():
        task = get_generator(name)
        print(
            f"  {name:<12} verifier {task.verifier:<10} difficulty = {task.knob} {task.levels[0]}-{task.levels[1]}"
        )
    print("datasets (load_problems('NAME[:split]')):")
    for name, spec in DATASETS.items():
        print(f"  {name:<14} {spec.hub_id or spec.url} [{spec.split}] answer rule {spec.answer_rule}")
    print("templates (add '+think' to end the prompt with <think>):")
    for name in available_templates():
        print(f"  {name:<12} {get_template(name).description}")
    return 0

import os
import random
import subprocess
import sys

import pytest

from r1zero.data import Problem, available_generators, generate, get_generator, register_generator
from r1zero.data.generators import parse_difficulty
from r1zero.data.problem import problems_to_jsonl
from r1zero.data.summary import gold_parses
from r1zero.verifiers import get_verifier

TASKS = ["arithmetic", "chain", "countdown", "list_sum"]


def test_builtin_tasks_are_registered_with_a_real_verifier():
    assert set(TASKS) <= set(available_generators())
    for name in TASKS:
        assert callable(get_verifier(get_generator(name).verifier))


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_bytes_other_seed_other_bytes(name):
    a = problems_to_jsonl(generate(name, 200, seed=7))
    assert a == problems_to_jsonl(generate(name, 200, seed=7))
    assert a != problems_to_jsonl(generate(name, 200, seed=8))


@pytest.mark.parametrize("name", TASKS)
def test_fewer_problems_are_a_prefix(name):
    assert generate(name, 20, seed=3) == generate(name, 100, seed=3)[:20]


@pytest.mark.parametrize("name", TASKS)
def test_problems_are_well_formed_and_their_golds_pass_their_verifier(name):
    problems = generate(name, 100, seed=1)
    assert len({p.id for p in problems}) == 100
    verifier = get_verifier(get_generator(name).verifier)
    for p in problems:
        assert (
            isinstance(p, Problem) and p.question and p.answer and p.verifier == get_generator(name).verifier
        )
        assert p.meta["source"] == name and p.meta["seed"] == 1
        assert gold_parses(verifier, p) == (True, "correct"), p


def test_list_sum_difficulty_is_list_length_and_answer_is_the_sum():
    problems = generate("list_sum", 400, seed=0)  # default 5-8
    lengths = {len(p.meta["numbers"]) for p in problems}
    assert lengths == {5, 6, 7, 8}
    for p in problems:
        assert all(1 <= n <= 9 for n in p.meta["numbers"])
        assert int(p.answer) == sum(p.meta["numbers"])
        assert p.meta["difficulty"] == len(p.meta["numbers"])
        assert p.question == "What is " + "+".join(map(str, p.meta["numbers"])) + "?"
        # the worked chain ends at the answer and has one step per addition
        steps = p.meta["worked"].split(", ")
        assert len(steps) == len(p.meta["numbers"]) - 1 and steps[-1].endswith(f"={p.answer}")


def test_chain_running_total_never_negative_and_answer_matches():
    for p in generate("chain", 300, difficulty="3-10", seed=2):
        total = p.meta["numbers"][0]
        for op, n in zip(p.meta["ops"], p.meta["numbers"][1:], strict=True):
            total = total + n if op == "+" else total - n
            assert total >= 0
        assert str(total) == p.answer
    assert any("-" in p.meta["ops"] for p in generate("chain", 50, seed=0))


@pytest.mark.parametrize("digits", [1, 3, 7])
def test_arithmetic_digits_knob(digits):
    for p in generate("arithmetic", 200, difficulty=digits, seed=0):
        a, b = p.meta["operands"]
        assert len(str(a)) <= digits and len(str(b)) <= digits
        expected = {"+": a + b, "-": a - b, "*": a * b}[p.meta["op"]]
        assert p.answer == str(expected) and expected >= 0
    if digits > 1:
        ops = {p.meta["op"] for p in generate("arithmetic", 100, difficulty=digits, seed=0)}
        assert ops == {"+", "-", "*"}
        assert all(
            len(str(a)) == digits
            for p in generate("arithmetic", 50, difficulty=digits)
            for a in p.meta["operands"]
        )


def test_difficulty_errors_name_the_allowed_range():
    with pytest.raises(ValueError, match=r"allowed 3-6"):
        generate("countdown", 5, difficulty=7)
    with pytest.raises(ValueError, match=r"'5-8'"):
        parse_difficulty("five")
    with pytest.raises(ValueError, match=r"registered: .*list_sum"):
        generate("no_such_task", 1)


def test_duplicate_generator_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register_generator("list_sum", verifier="integer", default_difficulty=3, levels=(1, 5), knob="x")
        def other(rng: random.Random, level: int):
            return "q", "1", {}


def test_cli_generate_is_byte_stable_across_processes(tmp_path):
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"f{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        cmd = [
            sys.executable,
            "-m",
            "r1zero",
            "data",
            "generate",
            "countdown",
            "--n",
            "300",
            "--difficulty",
            "3",
        ]
        subprocess.run([*cmd, "--seed", "0", "--out", str(out)], check=True, env=env, capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] == problems_to_jsonl(generate("countdown", 300, difficulty=3, seed=0)).encode()
    assert outs[0].count(b"\n") == 300

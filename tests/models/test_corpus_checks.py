"""Corpus knobs for self-checking: the defaults keep tiny-base's corpus, and the variants say what they do."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from r1zero.eval.checks import analyze_checks, problem_terms
from r1zero.models.corpus import CorpusSpec, build_corpus, slipped_chain
from r1zero.models.pretrain import PRESETS, main, override_corpus, pretrain

# sha256 of the first 3,000 default documents for seed 0, joined by blank lines: the corpus the shipped
# tiny-base was pretrained on; any change to the default draws changes it
DEFAULT_CORPUS_SHA256 = "8f020586b1fbbf9b4dde7e072ea324e39fc6983b5ca3b443d32e488107dfb149"
VARIANT = CorpusSpec(wait_share=0.0, slip_share=0.3, check_share=0.3, confirm_share=0.1)


def _digest(spec: CorpusSpec | None = None, n: int = 3000) -> str:
    text = "\n\n".join(d.text for d in build_corpus(n, seed=0, spec=spec or CorpusSpec()))
    return hashlib.sha256(text.encode()).hexdigest()


def test_default_corpus_is_bitwise_unchanged():
    assert _digest() == DEFAULT_CORPUS_SHA256
    assert _digest(PRESETS["tiny-base"].corpus) == DEFAULT_CORPUS_SHA256


def test_zero_shares_with_other_phrases_keep_the_corpus():
    assert _digest(CorpusSpec(check_phrases=("verify",))) == DEFAULT_CORPUS_SHA256


@pytest.mark.parametrize(
    ("at", "by", "check", "expected"),
    [
        (1, 1, None, ("3+5=8, 8+2=11, 11+4=15", 15)),
        (0, -2, None, ("3+5=6, 6+2=8, 8+4=12", 12)),
        (1, 2, "wait", ("3+5=8, 8+2=12, wait, 8+2=10, 10+4=14", 14)),
        (2, 0, "let me verify", ("3+5=8, 8+2=10, 10+4=14, let me verify, 10+4=14", 14)),
    ],
)
def test_slipped_chain(at, by, check, expected):
    assert slipped_chain(3, [("+", 5), ("+", 2), ("+", 4)], at, by, check) == expected


@pytest.mark.parametrize(
    ("at", "by", "check", "expected"),
    [
        (1, 1, None, ("3+5=8, 8+3=11, 11+4=15", 15)),
        (0, 2, "wait", ("3+7=10, wait, 3+5=8, 8+2=10, 10+4=14", 14)),
        (2, -2, None, ("3+5=8, 8+2=10, 10+2=12", 12)),
        (0, 5, None, ("3+0=3, 3+2=5, 5+4=9", 9)),  # 5 + 5 is past 9: the term goes down instead
    ],
)
def test_term_slips(at, by, check, expected):
    assert slipped_chain(3, [("+", 5), ("+", 2), ("+", 4)], at, by, check, term=True) == expected


def test_a_slip_never_goes_below_zero():
    assert slipped_chain(1, [("-", 1)], at=0, by=-2) == ("1-1=2", 2)


@pytest.fixture(scope="module")
def variant_docs():
    return list(build_corpus(4000, seed=0, spec=VARIANT))


def test_variant_shares(variant_docs):
    worked = [d for d in variant_docs if d.worked]
    slipped = [d for d in worked if d.slip]
    assert not any(d.wait for d in variant_docs)
    assert abs(len(slipped) / len(worked) - 0.3) < 0.04
    assert abs(sum(d.check for d in slipped) / len(slipped) - 0.3) < 0.07
    others = [d for d in worked if not d.slip]
    assert abs(sum(d.check for d in others) / len(others) - 0.1) < 0.03
    assert not any(d.slip or d.check for d in variant_docs if not d.worked)


@pytest.mark.parametrize("kind", ["value", "term"])
def test_the_exact_check_measure_reads_the_variant_corpus(kind):
    """Slips without a check end wrong; checked slips are fixes; confirmations change nothing."""
    seen = {"slip": 0, "fix": 0, "confirm": 0}
    for doc in build_corpus(3000, seed=0, spec=replace(VARIANT, slip_kind=kind)):
        if doc.task != "list_sum" or not doc.worked:  # mixed chains may repeat 0-0=0 steps
            continue
        terms = problem_terms(doc.text)
        report = analyze_checks(doc.text.split("Assistant:")[1], terms)
        if doc.slip and not doc.check:
            seen["slip"] += 1
            assert not report.checked and not report.final_correct, doc.text
        elif doc.slip:
            seen["fix"] += 1
            assert report.fixed and not report.broke, doc.text
        elif doc.check:
            seen["confirm"] += 1
            assert report.checked and not report.changed and report.final_correct, doc.text
        else:
            assert not report.checked and report.final_correct, doc.text
    assert min(seen.values()) > 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slip_share": 1.5}, "slip_share"),
        ({"confirm_share": -0.1}, "confirm_share"),
        ({"check_share": 0.2, "check_phrases": ()}, "check_phrases"),
        ({"slip_kind": "digit"}, "slip_kind='digit'; valid: 'value', 'term'"),
    ],
)
def test_bad_knobs_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorpusSpec(**kwargs)


def test_continued_pretraining_starts_from_the_checkpoint(tmp_path):
    small = PRESETS["smoke"]
    start, _ = pretrain(replace(small, steps=1, probe_samples=0))
    start.save_pretrained(tmp_path / "start")
    cfg = replace(small, steps=1, probe_samples=0, init_from=str(tmp_path / "start"), model_overrides=())
    model, stats = pretrain(cfg)
    assert model.config.hidden_size == start.config.hidden_size == 32  # not tiny_config's 128
    assert stats["steps"] == 1
    slips, guesses = PRESETS["tiny-aha-slips"], PRESETS["tiny-aha"]
    assert slips.init_from == guesses.init_from == "tiny-base" and slips.corpus.slip_share > 0
    assert guesses.corpus.guess_check_share > 0 and guesses.corpus.worked_share_plain == 0


@pytest.mark.parametrize(
    ("items", "field", "value"),
    [
        (["slip_share=0.3"], "slip_share", 0.3),
        (["check_phrases=wait, let me verify"], "check_phrases", ("wait", "let me verify")),
        (["list_len_max=7"], "list_len_max", 7),
        ([], "slip_share", 0.0),
    ],
)
def test_override_corpus(items, field, value):
    assert getattr(override_corpus(CorpusSpec(), items), field) == value


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("slips=0.3", "unknown corpus field 'slips'"),
        ("slip_share", "unknown"),
        ("list_len_max=x", "not a int"),
    ],
)
def test_override_corpus_names_the_bad_item(item, message):
    with pytest.raises(ValueError, match=message):
        override_corpus(CorpusSpec(), [item])


def test_pretrain_cli_rejects_a_bad_corpus_override(tmp_path, capsys):
    assert main(["--corpus", "slip_share=2", "--out", str(tmp_path / "x")]) == 2
    assert "slip_share=2.0 must be in [0, 1]" in capsys.readouterr().err


GUESS = CorpusSpec(wait_share=0.0, guess_check_share=0.3, worked_share_list_sum=0.0)


def test_guess_checks_work_the_sum_out_and_fix_wrong_guesses():
    """A checked guess ends on the right value: a wrong guess is a fix, a right one a confirmation."""
    docs = list(build_corpus(3000, seed=0, spec=GUESS))
    sums = [d for d in docs if d.task == "list_sum"]
    assert not any(d.worked for d in sums)  # worked_share_list_sum=0: no worked-first list sums
    direct = [d for d in docs if not d.worked]
    assert abs(sum(d.guess for d in direct) / len(direct) - 0.3) < 0.04
    seen = {"fix": 0, "confirm": 0}
    for doc in (d for d in sums if d.guess):
        report = analyze_checks(doc.text.split("Assistant:")[1], problem_terms(doc.text))
        assert doc.check and report.checked and report.final_correct and not report.broke, doc.text
        seen["fix" if report.changed else "confirm"] += 1
        assert report.fixed == report.changed, doc.text
    assert min(seen.values()) > 30


def test_a_tagged_guess_check_answers_the_worked_value():
    doc = next(d for d in build_corpus(3000, seed=0, spec=GUESS) if d.guess and d.tagged)
    think, answer = doc.text.rsplit("</think>", 1)
    worked = int(think.rsplit("the answer is ", 1)[1].rstrip(". "))
    assert answer.strip() == f"<answer>{worked}</answer>"


def test_list_sums_can_keep_their_own_worked_share():
    docs = list(build_corpus(3000, seed=0, spec=CorpusSpec(worked_share_list_sum=0.8)))
    sums = [d for d in docs if d.task == "list_sum"]
    others = [d for d in docs if d.task != "list_sum" and not d.tagged]
    assert abs(sum(d.worked for d in sums) / len(sums) - 0.8) < 0.04
    assert abs(sum(d.worked for d in others) / len(others) - 0.25) < 0.06


def test_bad_guess_knobs_are_named():
    with pytest.raises(ValueError, match=r"worked_share_list_sum=1\.5"):
        CorpusSpec(worked_share_list_sum=1.5)
    with pytest.raises(ValueError, match="guess_check_share"):
        CorpusSpec(guess_check_share=-0.5)
    assert override_corpus(GUESS, ["worked_share_list_sum=none"]).worked_share_list_sum is None
    assert override_corpus(CorpusSpec(), ["worked_share_list_sum=0.1"]).worked_share_list_sum == 0.1


def test_the_model_card_describes_the_variant_corpus():
    from dataclasses import asdict

    from r1zero.models.card import _corpus_text

    shipped = _corpus_text(0, asdict(CorpusSpec()))
    assert "in 25% of them, *worked* running-sum chains" in shipped and "that are always right" in shipped
    assert "Slips" not in shipped and "Checked guesses" not in shipped
    variant = _corpus_text(1, asdict(replace(VARIANT, guess_check_share=0.05, worked_share_list_sum=0.0)))
    assert "in 0% of them, *worked*" in variant and "right unless they slip" in variant
    assert "**Slips**: 30% of worked chains" in variant and "30% of those follow the slip" in variant
    assert "**Confirmations**: 10%" in variant and "**Checked guesses**: 5% of direct answers" in variant

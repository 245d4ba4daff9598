"""The tiny-base corpus: determinism and the design invariants the model card states."""

import re

import pytest

from r1zero.models.corpus import CorpusSpec, build_corpus, is_worked, list_sum_question, worked_chain

N = 4000
LIST_SUM_QUESTION = re.compile(r"What is \d(\+\d)+\?")  # single digits joined by + only


@pytest.fixture(scope="module")
def docs():
    return list(build_corpus(N, seed=0))


def test_same_seed_same_corpus_and_other_seed_differs(docs):
    assert [d.text for d in build_corpus(200, seed=0)] == [d.text for d in docs[:200]]
    assert [d.text for d in build_corpus(200, seed=1)] != [d.text for d in docs[:200]]


def test_list_sum_never_inside_tags(docs):
    tagged = [d for d in docs if "<think>" in d.text]
    assert tagged, "the corpus must contain tagged documents"
    for doc in tagged:
        question = re.search(r"User: (.*)\n", doc.text).group(1)
        assert not LIST_SUM_QUESTION.fullmatch(question), doc.text
        assert doc.task != "list_sum"
    list_sums = [d for d in docs if d.task == "list_sum"]
    assert list_sums and all("<" not in d.text for d in list_sums)  # not even the template's header


def test_the_header_does_not_force_the_tags(docs):
    headed = [d for d in docs if d.text.startswith("Think inside <think>")]
    untagged = [d for d in headed if not d.tagged]
    assert all(d.task != "list_sum" and "</think>" not in d.text.split("Assistant:")[1] for d in untagged)
    assert 0.05 < len(untagged) / len(headed) < 0.15


def test_worked_shares_match_the_spec(docs):
    spec = CorpusSpec()
    plain = [d for d in docs if d.task == "list_sum"]
    tagged = [d for d in docs if d.tagged]
    assert abs(len(plain) / N - spec.list_sum_share) < 0.03
    assert abs(sum(d.worked for d in plain) / len(plain) - spec.worked_share_plain) < 0.03
    assert abs(sum(d.worked for d in tagged) / len(tagged) - spec.worked_share_tagged) < 0.04
    worked = [d for d in docs if d.worked]
    assert 0.02 < sum(d.wait for d in worked) / len(worked) < 0.09
    assert all(is_worked(d.text.split("Assistant:")[1]) == d.worked for d in docs)


def _check_chain(chain: str) -> bool:
    """Every step of a running-sum chain is right, except steps followed by 'wait' (then redone)."""
    steps = [s.strip() for s in chain.split(",") if s.strip() and s.strip() != "wait"]
    good = True
    for i, step in enumerate(steps):
        lhs, rhs = step.split("=")
        a, op, b = re.fullmatch(r"(\d+)([+-])(\d+)", lhs).groups()
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        corrected = i + 1 < len(steps) and steps[i + 1].split("=")[0] == lhs
        good &= value == int(rhs) or corrected
    return good


def test_worked_answers_are_right_and_direct_ones_sloppy(docs):
    plain = [d for d in docs if d.task == "list_sum"]
    direct_right = []
    for doc in plain:
        question = re.search(r"What is ([\d+]+)\?", doc.text).group(1)
        gold = sum(int(x) for x in question.split("+"))
        stated = int(re.search(r"the answer is (\d+)\.$", doc.text).group(1))
        if doc.worked:
            chain = doc.text.split("Assistant: ")[1].rsplit(", the answer is", 1)[0]
            assert stated == gold and _check_chain(chain), doc.text
        else:
            direct_right.append(stated == gold)
    assert 0.4 < sum(direct_right) / len(direct_right) < 0.6  # sloppy_share = 0.5


def test_tagged_worked_documents_end_with_the_winning_path(docs):
    for doc in (d for d in docs if d.tagged and d.worked):
        match = re.search(r"the answer is (\d+)\. </think> <answer>(\d+)</answer>$", doc.text)
        assert match and match.group(1) == match.group(2), doc.text
    mixed = [d for d in docs if d.task == "mixed_chain"]
    assert all("-" in re.search(r"What is (.*)\?", d.text).group(1) for d in mixed)


def test_chain_helpers():
    assert list_sum_question([1, 2]) == "What is 1+2?"
    assert worked_chain(9, [("-", 4), ("+", 7)]) == ("9-4=5, 5+7=12", 12)
    text, value = worked_chain(0, [("+", 0)], wait_at=0)
    assert value == 0 and text.startswith("0+0=") and ", wait, 0+0=0" in text
    with pytest.raises(ValueError, match="list_sum_share"):
        CorpusSpec(list_sum_share=1.5)

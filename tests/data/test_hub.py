import time

import pytest

from r1zero.data import DATASETS, DataError, load_problems
from r1zero.data.answers import ANSWER_RULES, QUESTION_RULES


def test_spec_table_is_complete_and_consistent():
    expected = {
        "gsm8k",
        "math",
        "math500",
        "aime24",
        "aime25",
        "amc23",
        "minerva",
        "olympiadbench",
        "deepscaler",
        "dapo17k",
        "orz57k",
    }
    assert expected <= set(DATASETS)
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.answer_rule in ANSWER_RULES and spec.question_rule in QUESTION_RULES
        assert (spec.hub_id is None) == (spec.url is not None)
    assert DATASETS["gsm8k"].answer_rule == "after_hashes" and DATASETS["math"].answer_rule == "last_boxed"


@pytest.mark.parametrize("source", ["gsm8k", "gsm8k:train", "openai/gsm8k", "math500", "someone/some-set"])
def test_offline_hub_name_fails_fast_with_a_local_file_hint(monkeypatch, source):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_problems(source)
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert "Point at a local copy" in message and "load_problems('path/to/" in message
    if source.startswith(("gsm8k", "openai/")):
        assert "spec='gsm8k'" in message and "openai/gsm8k" in message
    if source == "gsm8k:train":
        assert "split 'train'" in message


def test_set_without_hub_copy_says_where_to_download():
    with pytest.raises(DataError, match=r"download https://github.com/Open-Reasoner-Zero/.*spec='orz57k'"):
        load_problems("orz57k")


def test_hub_options_are_checked():
    with pytest.raises(ValueError, match="allowed: split"):
        load_problems("gsm8k", question="x")

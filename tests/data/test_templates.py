import pytest

from r1zero.data import available_templates, get_template, register_template

R1_TABLE_1 = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: prompt. Assistant:"
)


def test_r1zero_is_the_paper_table_1_text():
    assert get_template("r1zero").render("prompt") == R1_TABLE_1
    assert get_template("r1zero").text == R1_TABLE_1.replace("User: prompt.", "User: {question}.")


def test_think_option_and_suffix_name():
    plain = get_template("r1zero").render("What is 2+3?")
    assert get_template("r1zero", think=True).render("What is 2+3?") == plain + " <think>"
    assert get_template("r1zero+think").name == "r1zero+think"
    assert get_template("r1zero+think").to_dict()["think"] is True
    assert get_template("r1zero").render("q", think_prefix=True).endswith("Assistant: <think>")
    assert get_template("qwen-math+think").render("q").endswith("<|im_start|>assistant\n<think>")


def test_qwen_math_and_none():
    text = get_template("qwen-math").render("What is {x} in \\frac{1}{2}?")
    assert "put your final answer within \\boxed{}" in text
    assert (
        "<|im_start|>user\nWhat is {x} in \\frac{1}{2}?<|im_end|>" in text
    )  # braces in questions are literal
    assert get_template("none").render("  raw  ") == "  raw  "


def _chat_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        chat_template=(
            "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}"
        ),
    )


def test_chat_uses_the_tokenizers_chat_template():
    tokenizer = _chat_tokenizer()
    chat = get_template("chat")
    assert chat.render("What is 2+3?", tokenizer=tokenizer) == "<|user|>What is 2+3?<|end|><|assistant|>"
    assert (
        get_template("chat+think").render("q", tokenizer=tokenizer)
        == "<|user|>q<|end|><|assistant|>\n<think>"
    )
    assert "<|assistant|>" in chat.to_dict(tokenizer)["chat_template"]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        chat.render("q")


def test_register_template_for_other_parts():
    template = register_template("test-tiny", "Q: {question}\nA: <think>", description="tiny")
    assert "test-tiny" in available_templates()
    assert get_template("test-tiny").render("3+4") == "Q: 3+4\nA: <think>"
    assert register_template("test-tiny", "Q: {question}\nA: <think>", description="tiny") == template
    with pytest.raises(ValueError, match="already registered"):
        register_template("test-tiny", "other {question}")
    with pytest.raises(ValueError, match="exactly once"):
        register_template("test-bad", "no placeholder")
    with pytest.raises(ValueError, match=r"registered: .*r1zero"):
        get_template("r1-zero")

"""tiny-base: the tokenizer, model config and prompt template of the built-in base model.

The model is a 4-layer Llama (RoPE, so a template never pushes generation past trained positions) over
a character-level vocabulary: printable ASCII, newline, the four R1-Zero tags as single tokens, and
BOS/EOS/PAD/UNK. Characters keep the arithmetic of the demo task visible to the
model digit by digit, and the vocabulary small (~100 rows of embedding).

Everything here is pure construction; writing to disk is the caller's ``save_pretrained``.
"""

from __future__ import annotations

import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, PreTrainedTokenizerFast

from r1zero.data.templates import TINY_DEMO_HEADER, get_template

__all__ = [
    "BOS",
    "DEMO_TEMPLATE",
    "DEMO_TEMPLATE_HEADER",
    "EOS",
    "PAD",
    "TAGS",
    "UNK",
    "build_tokenizer",
    "render_demo_prompt",
    "tiny_config",
]

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
#: The R1-Zero tags, each one token (DeepSeek-R1 paper, Table 1).
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
#: Every single character the tokenizer knows; anything else maps to UNK.
CHARACTERS = "\n\t" + "".join(ch for ch in string.printable if ch.isprintable())

#: The prompt template of the CPU demo, registered as "tiny-demo" in ``r1zero.data.templates`` (an
#: R1-Zero-style template, DeepSeek-R1 paper Table 1, shortened). ``{question}`` is the task's question,
#: e.g. ``What is 3+5+2+7+1?``. Like the paper's template it ends at ``Assistant:``, so using the tags is
#: the model's choice: ``<think> ... </think> <answer>N</answer>``.
DEMO_TEMPLATE_HEADER = TINY_DEMO_HEADER
DEMO_TEMPLATE = get_template("tiny-demo").text


def render_demo_prompt(question: str) -> str:
    """Fill ``DEMO_TEMPLATE`` with a question.

    >>> render_demo_prompt("What is 1+2?").splitlines()[1:]
    ['User: What is 1+2?', 'Assistant:']
    """
    return DEMO_TEMPLATE.format(question=question)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the character-level tiny-base tokenizer (deterministic: same ids on every call).

    Ids: 0-3 are PAD, BOS, EOS, UNK; then one id per character of ``CHARACTERS``; then the four tags.
    Encoding prepends BOS (as in pretraining documents); decoding concatenates characters.

    >>> tok = build_tokenizer()
    >>> ids = tok("<think> 3+4=7 </think>")["input_ids"]
    >>> ids[0] == tok.bos_token_id, len(ids)
    (True, 10)
    >>> tok.decode(ids, skip_special_tokens=True)
    '<think> 3+4=7 </think>'
    """
    specials = [PAD, BOS, EOS, UNK]
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in CHARACTERS:
        vocab[ch] = len(vocab)
    for tag in TAGS:
        vocab[tag] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    # Tags are ordinary (not special) tokens so that decoding keeps them in the text the verifier reads.
    tokenizer.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in TAGS])
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    bos_id = vocab[BOS]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )


def tiny_config(**overrides: object) -> LlamaConfig:
    """The tiny-base architecture: Llama, d=128, 4 layers, 4 heads, RoPE, ~0.85M parameters.

    Small enough to pretrain in minutes on CPU, large enough to show the R1-Zero signature in the CPU
    demo (the model card's zero-RL check, ``r1zero/assets/tiny-base/README.md``).
    ``max_position_embeddings`` (512) covers the 256-token pretraining window with room to spare;
    keep template + response inside the pretraining window.

    Args:
        **overrides: Any ``LlamaConfig`` field, e.g. ``num_hidden_layers=2`` for tests.

    >>> cfg = tiny_config(num_hidden_layers=2)
    >>> cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    (128, 2, 128)
    """
    tokenizer_vocab = 4 + len(CHARACTERS) + len(TAGS)
    fields: dict[str, object] = {
        "vocab_size": 128,  # >= the tokenizer's vocabulary, rounded up to a multiple of 64
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_bias": False,
        "use_cache": True,
    }
    unknown = set(overrides) - set(fields) - set(LlamaConfig().to_dict())
    if unknown:
        raise ValueError(f"unknown tiny_config overrides {sorted(unknown)}; valid: {sorted(fields)}")
    fields.update(overrides)
    if int(fields["vocab_size"]) < tokenizer_vocab:  # type: ignore[call-overload]
        raise ValueError(f"vocab_size={fields['vocab_size']} is below the tokenizer's {tokenizer_vocab} ids")
    return LlamaConfig(**fields)

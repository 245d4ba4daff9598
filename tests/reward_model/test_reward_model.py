"""The learned reward model: Bradley-Terry loss, pair files, a short real training run, scoring round trip."""

import json
import math

import pytest
import torch

from r1zero.data.preferences import generate_preferences, write_preferences
from r1zero.reward_model.cli import main as rm_main
from r1zero.reward_model.pairs import load_pairs, pairwise_accuracy
from r1zero.reward_model.score import LearnedReward, encode_pairs, pad_batch
from r1zero.reward_model.train import (
    RewardModelConfig,
    bradley_terry_loss,
    save_reward_model,
    train_reward_model,
)

#: Format-only pairs (untagged / broken tags vs the tagged right answer) are what a few steps can learn;
#: arithmetic-only pairs stay near chance for this model (that gap is the point of the experiment).
FORMAT_KINDS = ("untagged", "broken_format")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads are several times slower here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize(
    ("chosen", "rejected", "expected"),
    [
        ([0.0], [0.0], math.log(2)),  # no preference: log 2
        ([3.0], [1.0], math.log1p(math.exp(-2))),  # 0.1269
        ([1.0], [3.0], math.log1p(math.exp(2))),  # 2.1269: wrong order costs more
        ([2.0, -1.0], [0.0, 1.0], (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2),  # mean
        ([100.0], [0.0], 0.0),  # saturates without overflow
        ([0.0], [100.0], 100.0),
    ],
)
def test_bradley_terry_loss_golden_values(chosen, rejected, expected):
    loss = bradley_terry_loss(torch.tensor(chosen), torch.tensor(rejected))
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_bradley_terry_loss_depends_only_on_the_margin_and_pushes_it_up():
    chosen = torch.tensor([0.5, -2.0], requires_grad=True)
    loss = bradley_terry_loss(chosen, torch.tensor([1.0, -3.0]))
    assert loss.item() == pytest.approx(
        bradley_terry_loss(torch.tensor([10.5, 8.0]), torch.tensor([11.0, 7.0])).item()
    )
    loss.backward()
    assert (chosen.grad < 0).all()  # descending the loss raises the chosen reward


def test_pairwise_accuracy_counts_ties_half_and_groups_by_kind():
    out = pairwise_accuracy([1.0, 1.0, 0.0, 5.0], [0.0, 1.0, 2.0, 4.0], kinds=["x", "x", "y", "y"])
    assert out == {"accuracy": 0.625, "mean_margin": 0.0, "pairs": 4, "by_kind": {"x": 0.75, "y": 0.5}}
    assert "by_kind" not in pairwise_accuracy([1.0], [0.0])


# ------------------------------------------------------------------------------------------- pair files
def test_a_file_missing_rejected_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "kind": "k"}) + "\n")
    with pytest.raises(
        ValueError, match=r"bad\.jsonl: missing column\(s\) rejected; .*needs prompt, chosen, rejected"
    ):
        load_pairs(path)
    assert rm_main(["train", "--data", str(path), "--out", str(tmp_path / "rm"), "--no-progress"]) == 2


def test_unknown_file_type_names_the_allowed_ones(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected\n")
    with pytest.raises(ValueError, match=r"'\.csv'; allowed: \.json, \.jsonl, \.parquet"):
        load_pairs(path)


def test_parquet_pairs_load(tmp_path):
    import datasets

    rows = generate_preferences(5, seed=0)
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "p.parquet"))
    assert load_pairs(tmp_path / "p.parquet").to_list() == rows


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"heldout_fraction=1\.0; allowed: in \[0, 1\)"):
        RewardModelConfig(heldout_fraction=1.0)
    with pytest.raises(ValueError, match="epochs=0"):
        RewardModelConfig(epochs=0)


# -------------------------------------------------------------------------------------------- scoring
def test_left_truncation_keeps_bos_and_the_completion():
    from transformers import AutoTokenizer

    from r1zero.models.loading import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("tiny-base"))
    [full] = encode_pairs(tokenizer, ["User: What is 1+2?\nAssistant:"], [" the answer is 3."], 1000)
    [cut] = encode_pairs(tokenizer, ["User: What is 1+2?\nAssistant:"], [" the answer is 3."], 20)
    assert len(cut) == 20 and cut[0] == tokenizer.bos_token_id == full[0] and cut[1:] == full[-19:]
    assert tokenizer.decode(cut[1:]) == "t: the answer is 3."  # the last 19 characters


def test_llama_pooling_reads_the_last_real_token_with_left_or_right_padding():
    """transformers' sequence-classification pooling finds the last non-pad token either way."""
    model, tokenizer = _base()
    reward = LearnedReward(model, tokenizer)
    sequences = encode_pairs(tokenizer, ["Q: 1+1?", "Q: 20+22?"], [" 2", " the answer is 42."], 256)
    right_ids, right_mask = pad_batch(sequences, tokenizer.pad_token_id)  # [2, T]
    width = right_ids.shape[1]
    left_ids = torch.stack([torch.tensor([0] * (width - len(s)) + s) for s in sequences])  # [2, T]
    with torch.no_grad():
        right = model(input_ids=right_ids, attention_mask=right_mask).logits[:, 0]
        left = model(input_ids=left_ids, attention_mask=(left_ids != 0).long()).logits[:, 0]
        alone = [model(input_ids=torch.tensor([s])).logits[0, 0] for s in sequences]
    assert torch.allclose(right, torch.stack(alone), atol=1e-5)
    assert torch.allclose(left, torch.stack(alone), atol=1e-4)  # RoPE is relative: shifted positions agree
    assert reward.score(["Q: 1+1?", "Q: 20+22?"], [" 2", " the answer is 42."]) == pytest.approx(
        torch.stack(alone).tolist(), abs=1e-5
    )


# ------------------------------------------------------------------------------------- a real training
def test_a_short_training_run_learns_the_format_and_round_trips(tmp_path):
    rows = [r for r in generate_preferences(400, seed=0) if r["kind"] in FORMAT_KINDS][:120]
    data = write_preferences(rows, tmp_path / "prefs.jsonl")
    # one thread: on a shared 2-core machine two OpenMP threads are several times slower for this model
    config = RewardModelConfig(epochs=1, batch_size=8, lr=1e-3, heldout_fraction=0.2, seed=0, threads=1)
    stats = train_reward_model(data, tmp_path / "rm", config, progress=False)

    # measured 1.0 held-out accuracy on these 24 pairs (chance 0.5); the bar keeps a wide margin
    assert stats["heldout"]["pairs"] == 24 and stats["train_pairs"] == 96
    assert stats["heldout"]["accuracy"] >= 0.85, stats["heldout"]
    assert set(stats["heldout"]["by_kind"]) == set(FORMAT_KINDS)
    saved = json.loads((tmp_path / "rm" / "rm.json").read_text())
    assert saved["config"]["lr"] == 1e-3 and saved["stats"]["heldout"] == stats["heldout"]

    # training moved the scores away from the untrained model's
    loaded = LearnedReward.from_pretrained(tmp_path / "rm")
    prompts = [r["prompt"] for r in rows[:8]]
    completions = [r["rejected"] for r in rows[:8]]
    untrained = LearnedReward(*_base()).score(prompts, completions)
    assert loaded.score(prompts, completions) != pytest.approx(untrained, abs=1e-3)


def test_training_is_deterministic_for_a_seed(tmp_path):
    data = write_preferences(generate_preferences(30, seed=0), tmp_path / "prefs.jsonl")
    config = RewardModelConfig(batch_size=8, heldout_fraction=0.2, threads=1)
    runs = [train_reward_model(data, tmp_path / f"rm{i}", config, progress=False) for i in range(2)]
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["heldout"] == runs[1]["heldout"]
    weights = [(tmp_path / f"rm{i}" / "model.safetensors").read_bytes() for i in range(2)]
    assert weights[0] == weights[1]


def test_scores_from_a_saved_directory_equal_the_in_memory_model(tmp_path):
    rows = generate_preferences(12, seed=1)
    prompts = [r["prompt"] for r in rows]
    completions = [r["chosen"] for r in rows[:6]] + [r["rejected"] for r in rows[6:]]
    model, tokenizer = _base()
    config = RewardModelConfig(max_length=100)  # shorter than some inputs: truncation must round-trip too
    in_memory = LearnedReward(model, tokenizer, max_length=config.max_length).score(prompts, completions)
    save_reward_model(model, tokenizer, tmp_path / "rm", config, {"note": "untrained"})
    loaded = LearnedReward.from_pretrained(tmp_path / "rm")
    assert loaded.max_length == 100 and loaded.model.config.pad_token_id == tokenizer.pad_token_id
    assert loaded.score(prompts, completions, batch_size=5) == pytest.approx(in_memory, abs=1e-6)
    assert LearnedReward(model, tokenizer, max_length=256).score(prompts, completions) != pytest.approx(
        in_memory, abs=1e-4
    )  # max_length mattered, so it was read back from rm.json


def test_rm_eval_prints_pairwise_accuracy_as_json(tmp_path, capsys):
    model, tokenizer = _base()
    save_reward_model(model, tokenizer, tmp_path / "rm", RewardModelConfig(), {})
    rows = generate_preferences(10, seed=2)
    data = write_preferences(rows, tmp_path / "p.jsonl")
    assert rm_main(["eval", "--model", str(tmp_path / "rm"), "--data", str(data), "--threads", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    reward = LearnedReward.from_pretrained(tmp_path / "rm")
    prompts = [r["prompt"] for r in rows]
    expected = pairwise_accuracy(
        reward.score(prompts, [r["chosen"] for r in rows]),
        reward.score(prompts, [r["rejected"] for r in rows]),
        [r["kind"] for r in rows],
    )
    assert out == {"model": str(tmp_path / "rm"), "data": str(data), **expected}


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no reward model at .*r1zero rm train"):
        LearnedReward.from_pretrained(tmp_path / "nothing")


def _base():
    from r1zero.reward_model.train import _load_base

    torch.manual_seed(0)
    model, tokenizer = _load_base("tiny-base")
    return model.eval(), tokenizer

"""The memory planner: shapes and parameter counts against built models, hand-computed components, the
CLI, and every component against one measured learner update on CPU (within 15%)."""

from __future__ import annotations

import doctest
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from r1zero.train import plan, plan_cli
from r1zero.train.plan import GIB, ModelShape, PlanInputs, load_shape, plan_memory, shipped_shapes
from r1zero.train.presets import PRESETS, get_preset

BENCH = Path(__file__).resolve().parents[2] / "bench" / "plan_check.py"

#: the published parameter counts of the shipped shapes (the models' cards: 1.54B, 3.09B, 7.61B)
PUBLISHED = {
    "qwen2.5-math-1.5b": 1_543_714_304,
    "qwen2.5-3b": 3_085_938_688,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-math-7b": 7_615_616_512,
}


@pytest.mark.parametrize("module", [plan, plan_cli])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_shapes_count_what_transformers_builds(name):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = json.loads((plan.SHAPES_DIR / f"{name}.json").read_text())
    with torch.device("meta"):  # the real module tree, no memory
        model = Qwen2ForCausalLM(Qwen2Config(**config))
    built = sum(p.numel() for p in model.parameters())
    assert load_shape(name).num_params == built == PUBLISHED[name]


@pytest.mark.parametrize(
    ("tied", "kv_heads", "bias", "mlp_bias"),
    [(True, 4, False, False), (False, 2, False, False), (False, 1, True, False), (True, 2, True, True)],
)
def test_parameter_count_of_built_llamas(tied, kv_heads, bias, mlp_bias):
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config

    config = tiny_config(
        hidden_size=64,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=tied,
        attention_bias=bias,
        mlp_bias=mlp_bias,
    )
    model = LlamaForCausalLM(config)
    assert ModelShape.from_config(config.to_dict()).num_params == sum(p.numel() for p in model.parameters())


def test_load_shape_accepts_names_hub_names_directories_and_files(tmp_path, tiny_model_dir):
    assert shipped_shapes() == sorted(PUBLISHED)
    assert load_shape("Qwen/Qwen2.5-Math-7B") == load_shape("qwen2.5-math-7b")
    assert load_shape("qwen2.5-math-7b").tied_embeddings is False
    assert load_shape("qwen2.5-math-1.5b").tied_embeddings is True
    assert load_shape(str(tiny_model_dir)).hidden_size == 32
    assert load_shape(str(tiny_model_dir / "config.json")).num_layers == 1
    assert load_shape("tiny-base").vocab_size == 128
    with pytest.raises(FileNotFoundError, match=r"qwen2\.5-math-1\.5b"):
        load_shape("no-such-model")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match="num_hidden_layers"):
        load_shape(str(tmp_path))


# A small model whose every component can be checked by hand: H 8, 2 layers, 2 heads (1 kv), I 16, V 10, tied.
SMALL = ModelShape(
    hidden_size=8,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=16,
    vocab_size=10,
    tied_embeddings=True,
)


def test_small_shape_parameters_by_hand():
    # layer: q 64 + k 32 + v 32 + o 64 + mlp 3*8*16=384 + norms 16 = 592; root: 80 embedding + 8 norm
    assert SMALL.layer_params == 592
    assert SMALL.num_params == 2 * 592 + 88
    assert SMALL.critic_params == SMALL.num_params + 9  # tied: the embedding stays, a value head is added


def test_activation_bytes_by_hand():
    # per token and layer (float32): norms 2*(32+4+64) = 200; attention 4*4*8 + 4*2 + 4*S(=4) = 152;
    # mlp 4*4*16 = 256 -> 608; outside: ids 8 + cos/sin 2*4*4 + final norm 100 = 140; backward 4*(32+8) = 160
    full = plan.activation_bytes(SMALL, tokens=3, seq_len=4, compute_bytes=4, checkpointing=False)
    assert full == 3 * (2 * 608 + 140 + 160)
    # checkpointing: each layer's input (4*8) and one layer recomputed
    ckpt = plan.activation_bytes(SMALL, tokens=3, seq_len=4, compute_bytes=4, checkpointing=True)
    assert ckpt == 3 * (2 * 32 + 608 + 140 + 160)
    saved = plan.activation_bytes(
        SMALL, tokens=3, seq_len=4, compute_bytes=4, checkpointing=False, workspace=False
    )
    assert saved == full - 3 * 160


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # float32, unchunked: logits over S = 4 positions, log-softmax + 2 entropy temporaries over T = 3
        ({"compute_bytes": 4}, 2 * 10 * 4 * (4 + 3 * 3)),
        # bf16: bf16 logits over S, float32 copy + 3 buffers over T
        ({"compute_bytes": 2}, 2 * 10 * (2 * 4 + 16 * 3)),
        # chunked, 2 positions: bf16 chunk + 4 float32 chunk buffers
        ({"compute_bytes": 2, "chunk": 2}, 2 * 10 * 2 * (2 + 16)),
        # the LM head's weight gradients dominate small chunks
        ({"compute_bytes": 2, "chunk": 1, "head_grad_bytes": 1000}, 4 * 2 * 1 * 10 + 1000),
    ],
)
def test_logits_bytes_by_hand(kwargs, expected):
    assert plan.logits_bytes(rows=2, completion_len=3, seq_len=4, vocab_size=10, **kwargs) == expected


def test_fsdp_divides_state_by_gpus_and_offload_moves_it_off():
    shape = load_shape("qwen2.5-math-7b")
    base = PlanInputs(gpus=8, dtype="float32", compute_dtype="bfloat16", sharding="none")
    full = plan_memory(shape, base)
    sharded = plan_memory(shape, replace(base, sharding="fsdp"))
    offloaded = plan_memory(shape, replace(base, sharding="fsdp", cpu_offload=True))
    p = shape.num_params
    assert (full.weights, full.gradients, full.optimizer) == (4 * p, 4 * p, 8 * p)
    assert sharded.weights == 4 * -(-p // 8) and sharded.optimizer == 2 * sharded.weights
    assert offloaded.weights == offloaded.gradients == offloaded.optimizer == 0
    assert full.gathered == 0
    # the root (embeddings + head) and two layers gathered in bf16, one layer's gradients cast to fp32
    root, layer = shape.root_params, shape.layer_params
    assert sharded.gathered == 2 * (root + 2 * layer) + 4 * layer == offloaded.gathered
    # chunked log-probs: 3 bf16 copies of the LM head's weight gradient dominate the chunk's buffers
    chunked = plan_memory(shape, replace(base, sharding="fsdp", micro_batch=1, logits_chunk=8))
    assert chunked.logits == 4 * 8 * shape.vocab_size + 3 * 2 * shape.vocab_size * shape.hidden_size


def test_reference_critic_and_vllm_are_counted_only_when_used():
    shape = load_shape("qwen2.5-math-1.5b")
    base = PlanInputs(gpus=1, dtype="bfloat16", compute_dtype="bfloat16", vllm_share=0.4, gpu_mem_gib=80)
    plain = plan_memory(shape, base)
    assert plain.reference == plain.critic == 0
    assert plain.vllm == int(0.4 * 80 * GIB)
    assert plain.rollout_peak == plain.persistent + plain.vllm
    assert plain.update_peak == plain.persistent + plain.activations + plain.logits  # vLLM asleep
    with_ref = plan_memory(shape, replace(base, reference=True))
    assert with_ref.reference == 2 * shape.num_params
    ppo = plan_memory(shape, replace(base, critic=True))
    assert ppo.critic == 4 * 2 * shape.critic_params
    hf = plan_memory(shape, replace(base, rollout_backend="hf", sharding="fsdp"))
    assert hf.vllm == 0 and hf.rollout_copy == 2 * shape.num_params


def test_fits_needs_the_headroom():
    shape = load_shape("qwen2.5-math-1.5b")
    inputs = PlanInputs(gpus=1, rollout_backend="hf", micro_batch=1, completion_len=256)
    result = plan_memory(shape, inputs)
    just = result.peak / GIB / 0.9
    assert plan_memory(shape, replace(inputs, gpu_mem_gib=just * 1.001)).fits
    assert not plan_memory(shape, replace(inputs, gpu_mem_gib=just * 0.999)).fits


#: the GPU presets' learner as it was before they sharded: bf16 weights and AdamW state, a copy per GPU
UNSHARDED_BF16 = ["--model.sharding", "none", "--model.dtype", "bfloat16", "--model.compute_dtype", "auto"]


def test_remedies_fit_and_are_listed_when_a_plan_does_not():
    from r1zero.train.config import apply_overrides

    shape = load_shape("qwen2.5-math-7b")
    config = apply_overrides(get_preset("dr-grpo"), UNSHARDED_BF16)
    inputs = plan.inputs_from_config(config, 8, 80.0, logits_chunk=27)
    assert not plan_memory(shape, inputs).fits  # 57 GiB of bf16 weights, gradients and AdamW + vLLM's half
    found = plan_cli.remedies(shape, inputs)
    assert found and all(p.fits for _, p in found)
    assert found[0][0] == "--model.sharding fsdp"


def test_cli_prints_the_table_and_reads_overrides(capsys):
    assert plan_cli.main(["--preset", "dr-grpo", "--gpus", "8", "--gpu-mem", "80", *UNSHARDED_BF16]) == 0
    out = capsys.readouterr().out
    assert "model qwen2.5-math-7b" in out and "optimizer (AdamW, 2 moments)" in out
    assert "does NOT fit" in out and "try --model.sharding fsdp" in out
    assert plan_cli.main(["--preset", "dr-grpo", "--model", "qwen2.5-math-1.5b", "--gpus", "1"]) == 0
    out = capsys.readouterr().out
    assert "1/1 per GPU (fsdp)" in out and "fits with 10% headroom" in out
    with pytest.raises(ValueError, match="unknown"):
        plan_cli.main(["--preset", "dr-grpo", "--model.no_such_field", "1"])
    with pytest.raises(ValueError, match="--gpus"):
        plan_cli.main(["--gpus", "0"])


def test_the_dispatcher_knows_plan():
    from r1zero.cli import COMMANDS

    assert COMMANDS["plan"][0] == "r1zero.train.plan_cli"


#: the GPUs each GPU preset's docstring assumes
PRESET_GPUS = {"r1zero-paper": 8, "dr-grpo": 8, "dapo": 8, "simplerl-zoo": 8, "countdown-3b": 2, "ppo-orz": 8}


def test_every_gpu_preset_is_listed():
    assert set(PRESET_GPUS) == {n for n in PRESETS if get_preset(n).rollout.backend == "vllm"}


@pytest.mark.parametrize(("name", "gpus"), sorted(PRESET_GPUS.items()))
def test_every_gpu_preset_fits_the_gpus_it_assumes(name, gpus, capsys):
    assert plan_cli.main(["--preset", name, "--gpus", str(gpus), "--gpu-mem", "80"]) == 0
    out = capsys.readouterr().out
    assert "fits with 10% headroom" in out, out


def _bench():
    spec = importlib.util.spec_from_file_location("plan_check", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: a small case that runs in ~30 s: checkpointing, chunked log-probs, grouped-query attention, tied head
SMALL_CASE = {
    "shape": {
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 16000,
        "tie_word_embeddings": True,
    },
    "rows": 2,
    "prompt_len": 16,
    "completion_len": 240,
    "checkpointing": True,
    "chunk": 16,
}


def test_planner_matches_a_measured_update_within_15_percent():
    rows = _bench().compare(SMALL_CASE)
    assert rows["params"]["ratio"] == 1.0
    off = {key: r["ratio"] for key, r in rows.items() if abs(r["ratio"] - 1) > 0.15}
    assert off == {}, rows


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no-checkpointing", "checkpointing", "chunked-logprobs", "small-chunks"])
def test_planner_matches_the_bench_cases_within_15_percent(case):
    bench = _bench()
    rows = bench.compare(bench.CASES[case])
    off = {key: r["ratio"] for key, r in rows.items() if abs(r["ratio"] - 1) > bench.TOLERANCE}
    assert off == {}, rows


def test_the_tables_in_the_training_docs_are_the_commands_output(capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    blocks = [b.split("\n```")[0] for b in docs.split("```text\n$ r1zero plan ")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        command, _, printed = block.partition("\n")
        assert plan_cli.main(command.split()) == 0
        assert capsys.readouterr().out.rstrip() == printed.rstrip()


def test_the_presets_table_memory_column_is_the_planners():
    import re

    from r1zero.train.plan_cli import default_logits_chunk

    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|.*\| (\d)x80 GB[^|]*peak ([\d.]+) GiB each", docs, flags=re.M)
    assert {name for name, _, _ in rows} == set(PRESET_GPUS)
    for name, gpus, peak in rows:
        config = get_preset(name)
        shape = load_shape(config.model.name)
        chunk, _ = default_logits_chunk(
            config.algo.micro_batch_size, config.rollout.max_new_tokens, shape.vocab_size
        )
        inputs = plan.inputs_from_config(config, int(gpus), 80.0, logits_chunk=chunk)
        assert f"{plan_memory(shape, inputs).peak / GIB:.1f}" == peak, name

"""GRPO step time and peak memory: r1zero's trainer vs TRL's ``GRPOTrainer`` on the same work, on CPU.

The work: a randomly initialised Qwen2 (hidden 256, 4 layers, 4 heads, 2 KV heads, intermediate 512,
~2.4M parameters) over tiny-base's character tokenizer, saved in Hugging Face format; 8 prompts x 8
completions per step (``list_sum`` under the ``tiny-demo`` template, the same prompts in the same order on
both sides), at most 128 new tokens, T = 1, beta = 0, mu = 1, loss types ``grpo`` and ``dapo``, the
``integer`` verifier, lr 1e-6 (the model barely moves, so completion lengths stay comparable), float32,
2 torch threads. Both sides compute the same gradient. Settings that differ from a library's default, to
make the work the same: TRL ``bf16=False`` (TRL turns on bf16 autocast by default, also on CPU) and
``gradient_checkpointing=False``; r1zero ``rollout.stop=()`` (TRL stops at EOS only). Otherwise each side
runs its defaults: TRL one forward/backward over all 64 sequences, generating with
``transformers.generate``; r1zero its ``fast`` engine, each distinct prompt run once in the learner, and
its ``cpu.*`` features.

Sides (``--sides``); each ``r1zero-*`` side is r1zero's defaults with one thing changed:

- ``r1zero``: the defaults (``rollout.decode_threads=2``, every ``cpu.*`` feature on).
- ``r1zero-1t``: ``rollout.decode_threads=1``, the whole decode batch in one thread.
- ``r1zero-2r``: data parallel, ``torchrun`` with 2 gloo ranks of 1 thread (one decode thread each),
  4 prompts x 8 per rank, gradients summed over ranks.
- ``r1zero-mkl``: ``cpu.onednn=False``, PyTorch's default GEMM (MKL), the one TRL runs on.
- ``r1zero-onednn``: ``cpu.onednn=True``, oneDNN's GEMM whatever the CPU (``bench/onednn.py`` compares
  the two GEMMs).
- ``r1zero-unfused``: ``cpu.fused_kernels=False`` (transformers' RMSNorm, SwiGLU and RoPE; attention
  through SDPA over length buckets).
- ``r1zero-padded``: ``cpu.packed=False`` (rows padded to their micro-batch's longest).
- ``r1zero-malloc``: ``cpu.keep_freed_memory=False`` (glibc's default malloc, ``r1zero.cpu.malloc``).
- ``r1zero-sdpa``: the packed rows' attention through SDPA over length buckets instead of
  ``attention_ops.cpp`` (``r1zero.cpu.packed.use_fused_attention``, switched in this benchmark only).
- ``trl``: TRL in one process.
- ``trl-2r``: TRL under Trainer's DDP, 2 gloo ranks of 1 thread like ``r1zero-2r``, 32 sequences per rank.

Each (side, loss type) runs in a fresh subprocess (or ``torchrun`` job); runs are interleaved,
alternating which side goes first, with the load average recorded before and after each.
``--seeds 0,1,2,3`` runs repetition r with seed r on both sides (same prompts, other samples), so the
sampled lengths average out. Per step: ``step_s`` wall time, ``step_cpu_s`` process CPU time (all
threads; steadier than wall time under load), ``generate_s`` the engine's generation, ``score_s`` the
rest of the rollout phase, ``update_s`` the rest (forward, backward, optimiser, weight push); peak RSS
from ``ru_maxrss``. A side of several ranks reports rank 0's wall times and CPU time and peak RSS summed
over ranks. Writes ``bench/results/trl_step.json`` (with the
machine's CPU and library versions); docs/performance.md shows the tables.

Run it in its own venv, which has TRL::

    python3 -m venv .venv-bench && . .venv-bench/bin/activate
    pip install torch==2.13.0 && pip install trl==1.16.0 && pip install -e .
    python bench/trl_step.py                      # build the model if needed, run, summarise
    python bench/trl_step.py --sides trl,r1zero,r1zero-sdpa --reps 2
    python bench/trl_step.py --threads 1 --out bench/results/trl_step_1thread.json  # CPU time ~ work
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THREADS = 2
PROMPTS_PER_STEP = 8
GROUP_SIZE = 8
MAX_NEW_TOKENS = 128
LR = 1e-6
SEED = 0
#: the random model's weights (fixed; ``SEED`` is the run's sampling and prompt-order seed)
MODEL_SEED = 0
DEFAULT_MODEL_DIR = "runs/bench/qwen2-2.4m"


@dataclass(frozen=True)
class Side:
    """An r1zero side: its processes and the settings it changes from r1zero's defaults."""

    ranks: int = 1
    decode_threads: int | None = None  # None: r1zero's default
    onednn: bool | None = None  # None: r1zero's default (by CPU vendor: r1zero.cpu.onednn.preferred)
    fused_kernels: bool = True
    packed: bool = True
    keep_freed_memory: bool = True
    fused_attention: bool = True  # False: the packed rows' attention through SDPA over buckets


#: r1zero's sides: its defaults (one process, ``rollout.decode_threads=2``, ``cpu.onednn``,
#: ``cpu.fused_kernels``, ``cpu.packed``, ``cpu.keep_freed_memory``), its decode loop on one thread,
#: its data-parallel mode (``torchrun``, 2 gloo ranks of 1 thread each, one decode thread each: each
#: rank rolls out and trains on 4 of the 8 prompts, the gradients are summed over ranks), and its
#: defaults with one of them changed: PyTorch's own GEMM (MKL, the one TRL runs on) or oneDNN's, whatever
#: the CPU, transformers' own RMSNorm/SwiGLU/RoPE, the learner's rows padded, glibc's default malloc, the
#: packed attention on SDPA
SIDES = {
    "r1zero": Side(),
    "r1zero-1t": Side(decode_threads=1),
    "r1zero-2r": Side(ranks=2, decode_threads=1),
    "r1zero-mkl": Side(onednn=False),
    "r1zero-onednn": Side(onednn=True),
    "r1zero-unfused": Side(fused_kernels=False),
    "r1zero-padded": Side(packed=False),
    "r1zero-malloc": Side(keep_freed_memory=False),
    "r1zero-sdpa": Side(fused_attention=False),
}
#: TRL's sides, as processes: its default (one process), and data-parallel like r1zero-2r (torchrun, 2
#: gloo ranks of 1 thread, 32 sequences per rank: Trainer's DDP)
TRL_SIDES = {"trl": 1, "trl-2r": 2}
#: the TRL side each r1zero side is compared with besides ``trl``
PAIRED = {"r1zero-2r": "trl-2r"}


# ---------------------------------------------------------------- the model and the prompts
def build_reference_model(model_dir: str) -> int:
    """Save the random Qwen2 reference model and the tiny-base tokenizer to ``model_dir``; returns #params."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from r1zero.models.tiny import build_tokenizer

    torch.manual_seed(MODEL_SEED)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),  # every sampled id decodes to a character or tag
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return sum(p.numel() for p in model.parameters())


def r1zero_config(
    model_dir: str,
    loss_type: str,
    steps: int,
    out_dir: str,
    decode_threads: int | None = None,
    ranks: int = 1,
    onednn: bool | None = None,
    fused_kernels: bool = True,
    packed: bool = True,
    keep_freed_memory: bool = True,
):
    """The r1zero ``TrainConfig`` of the benchmark (its defaults, plus the shared settings above).

    With ``ranks`` processes, each gets ``THREADS // ranks`` torch threads (the same cores in all).
    """
    from r1zero.train.config import (
        AlgoConfig,
        CpuConfig,
        DataConfig,
        ModelConfig,
        OptimConfig,
        RolloutConfig,
        RunConfig,
        TrainConfig,
        validate,
    )

    return validate(
        TrainConfig(
            model=ModelConfig(
                name=model_dir,
                dtype="float32",
                device="cpu",
            ),
            data=DataConfig(source="list_sum", train_size=512, heldout_size=0, template="tiny-demo"),
            rollout=RolloutConfig(
                backend="fast",
                prompts_per_step=PROMPTS_PER_STEP,
                group_size=GROUP_SIZE,
                temperature=1.0,
                max_new_tokens=MAX_NEW_TOKENS,
                stop=(),
                **({} if decode_threads is None else {"decode_threads": decode_threads}),
            ),
            algo=AlgoConfig(loss_agg=loss_type, beta=0.0, mu=1),  # r1zero's default micro-batch
            optim=OptimConfig(lr=LR),
            run=RunConfig(
                name=f"bench-{loss_type}",
                out_dir=out_dir,
                steps=steps,
                seed=SEED,
                eval_every=0,
                save_every=0,
                threads=THREADS // ranks,
                progress=False,
                overwrite=True,
            ),
            cpu=CpuConfig(
                onednn=onednn, fused_kernels=fused_kernels, packed=packed, keep_freed_memory=keep_freed_memory
            ),
            preset="bench",
        )
    )


def step_prompts(model_dir: str, loss_type: str, steps: int) -> tuple[list[str], list[str], Any]:
    """The prompts (and gold answers) r1zero trains on at each step, in order, flattened."""
    from transformers import AutoTokenizer

    from r1zero.data.sampler import PromptSampler
    from r1zero.train import build

    config = r1zero_config(model_dir, loss_type, steps, "unused")
    problems = build.load_problems_for(config)
    sampler = PromptSampler(problems, PROMPTS_PER_STEP, seed=config.run.seed)  # as r1zero's session does
    chosen = [p for _ in range(steps) for p in sampler.next_batch()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return build.render_prompts(config, chosen, tokenizer), [p.answer for p in chosen], config


# ---------------------------------------------------------------- one side, in this process
def pin_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= THREADS:
        os.sched_setaffinity(0, set(range(THREADS)))


def run_r1zero(model_dir: str, loss_type: str, steps: int, side: Side) -> dict[str, Any]:
    """r1zero's trainer in this process (one rank of a ``torchrun`` job when RANK is set).

    Every rank returns its per-step CPU times (from one step's rollout start to the next's; the last
    step's is NaN); rank 0 also the wall times of its metrics lines (which include waiting for the other
    ranks at the gradient all-reduce).
    """
    from r1zero.train import recipe

    cpu_marks: list[float] = []  # process CPU time when each step's rollout starts
    collect = recipe.collect_groups

    def marked(*args, **kwargs):
        cpu_marks.append(time.process_time())
        return collect(*args, **kwargs)

    recipe.collect_groups = marked  # instrumentation in this benchmark subprocess only
    if not side.fused_attention:  # no config switch of its own: it comes with cpu.fused_kernels
        from r1zero.cpu import packed

        packed.use_fused_attention = lambda model: False
    with tempfile.TemporaryDirectory() as out_dir:  # only rank 0 writes its run directory
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        config = r1zero_config(
            model_dir,
            loss_type,
            steps,
            out_dir,
            side.decode_threads,
            ranks,
            side.onednn,
            side.fused_kernels,
            side.packed,
            side.keep_freed_memory,
        )
        recipe.train(config)
        metrics = Path(out_dir) / config.run.name / "metrics.jsonl"
        rows = [json.loads(line) for line in metrics.open()] if metrics.exists() else []
    rows = [r for r in rows if r.get("step", 0) >= 1]
    return {
        "step_cpu_s": [b - a for a, b in itertools.pairwise(cpu_marks)] + [float("nan")],
        "step_s": [r["time/step"] for r in rows],
        "generate_s": [r["time/generate"] for r in rows],
        "score_s": [r["time/verify"] for r in rows],
        "update_s": [r["time/update"] for r in rows],
        "completion_len_mean": [r["length/mean"] for r in rows],
    }


def run_trl(model_dir: str, loss_type: str, steps: int, ranks: int = 1) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1zero.train import build
    from r1zero.verifiers.interop import as_trl_reward

    prompts, answers, config = step_prompts(model_dir, loss_type, steps)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reward = as_trl_reward(
        "integer",
        weights=build.reward_weights(config),
        workers=config.reward.workers,
        timeout=config.reward.timeout,
    )
    with tempfile.TemporaryDirectory() as out_dir:
        args = GRPOConfig(
            output_dir=out_dir,
            loss_type=loss_type,
            beta=0.0,
            num_iterations=1,
            num_generations=GROUP_SIZE,
            per_device_train_batch_size=PROMPTS_PER_STEP * GROUP_SIZE // ranks,
            gradient_accumulation_steps=1,
            max_completion_length=MAX_NEW_TOKENS,
            temperature=1.0,
            learning_rate=LR,
            lr_scheduler_type="constant",
            max_steps=steps,
            shuffle_dataset=False,  # rows are already in r1zero's order
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=True,
            seed=SEED,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": prompts, "answer": answers}),
            processing_class=tokenizer,
        )
        timer = _TRLTimer(trainer)
        trainer.add_callback(timer.callback(TrainerCallback))
        trainer.train()
    lengths = [
        h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
    ]
    return {
        "step_cpu_s": timer.step_cpu,
        "step_s": timer.step,
        "generate_s": timer.generate,
        "score_s": timer.rollout_other,
        "update_s": [s - r for s, r in zip(timer.step, timer.rollout, strict=True)],
        "completion_len_mean": lengths,
    }


class _TRLTimer:
    """Wall time of each TRL step, of its ``_generate`` call and of ``_generate_and_score_completions``."""

    def __init__(self, trainer) -> None:
        self.step: list[float] = []
        self.step_cpu: list[float] = []
        self._cpu0 = 0.0
        self.generate: list[float] = []
        self.rollout: list[float] = []
        self.rollout_other: list[float] = []
        self._t0 = 0.0
        self._wrap(trainer, "_generate", self.generate)
        self._wrap(trainer, "_generate_and_score_completions", self.rollout)

    @staticmethod
    def _wrap(trainer, name: str, sink: list[float]) -> None:
        original = getattr(trainer, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            sink.append(time.perf_counter() - t0)
            return out

        setattr(trainer, name, timed)  # this instance only

    def callback(self, base):
        timer = self

        class StepTimer(base):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._t0 = time.perf_counter()
                timer._cpu0 = time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                timer.step.append(time.perf_counter() - timer._t0)
                timer.step_cpu.append(time.process_time() - timer._cpu0)
                timer.rollout_other.append(timer.rollout[-1] - timer.generate[-1])

        return StepTimer()


def run_side(side: str, model_dir: str, loss_type: str, steps: int, warmup: int) -> dict[str, Any]:
    """One side in this (fresh) process: per-step times after warm-up, medians, peak RSS, load.

    For a side of several processes this is one rank; ``merge_ranks`` makes the side's result.
    """
    ranks = SIDES[side].ranks if side in SIDES else TRL_SIDES[side]
    pin_threads(THREADS // ranks)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    if side in TRL_SIDES:
        raw = run_trl(model_dir, loss_type, warmup + steps, ranks)
    else:
        raw = run_r1zero(model_dir, loss_type, warmup + steps, SIDES[side])
    wall = time.perf_counter() - t0
    measured = {k: v[warmup:] for k, v in raw.items()}
    return {
        "side": side,
        "loss_type": loss_type,
        "warmup_steps": warmup,
        "measured_steps": len(measured["step_s"]),
        **{f"median_{k}": _median(v) for k, v in measured.items() if v},
        "per_step": measured,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "threads": THREADS,
        "rank": int(os.environ.get("RANK", "0")),
    }


def merge_ranks(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's result from its ranks': rank 0's wall times, CPU time and peak RSS summed over ranks.

    >>> a = {"rank": 0, "per_step": {"step_s": [2.0], "step_cpu_s": [1.5]}, "peak_rss_mb": 600.0}
    >>> b = {"rank": 1, "per_step": {"step_cpu_s": [1.0]}, "peak_rss_mb": 500.0}
    >>> m = merge_ranks([b, a])
    >>> m["per_step"]["step_cpu_s"], m["median_step_cpu_s"], m["peak_rss_mb"], m["ranks"]
    ([2.5], 2.5, 1100.0, 2)
    """
    if len(results) == 1:
        return results[0]
    results = sorted(results, key=lambda r: r["rank"])
    cpu = [
        sum(step) for step in zip(*(r["per_step"]["step_cpu_s"] for r in results), strict=True)
    ]  # NaN stays
    merged = {**results[0], "per_step": {**results[0]["per_step"], "step_cpu_s": cpu}}
    merged["median_step_cpu_s"] = _median(cpu)
    merged["peak_rss_mb"] = sum(r["peak_rss_mb"] for r in results)  # every process's own peak
    merged["ranks"] = len(results)
    return merged


# ---------------------------------------------------------------- the driver
def _median(values: list[float]) -> float:
    """Median of the finite values (a step without a CPU-time mark is NaN).

    >>> _median([3.0, float("nan"), 1.0, 2.0])
    2.0
    """
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def write_results(results: dict[str, Any], out: str) -> None:
    """Add the closing load, thread count, versions and command to ``results``; write them to ``out``."""
    results.update(
        load_after=os.getloadavg(),
        threads=THREADS,
        environment=environment(),
        command="python " + " ".join(sys.argv),
    )
    Path(out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"-> {out}")


def environment() -> dict[str, Any]:
    import torch
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = "not installed"
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl_version,
        "cpu": _cpu_field(cpuinfo, "model name"),
        # the CPU generation moves GEMM speeds by up to 2x, so results name it
        "cpu_family_model": f"{_cpu_field(cpuinfo, 'cpu family')}/{_cpu_field(cpuinfo, 'model')}",
        "avx512": [f for f in _cpu_field(cpuinfo, "flags").split() if f in AVX512_FLAGS],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


#: the AVX-512 features that the float32 / bfloat16 GEMM kernels pick their code path by
AVX512_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni")


def _cpu_field(cpuinfo: list[str], name: str) -> str:
    """The first ``name : value`` of ``/proc/cpuinfo``'s lines, or ``"?"``.

    >>> _cpu_field(["cpu family\t: 25", "model\t\t: 17", "model name\t: AMD EPYC"], "model")
    '17'
    """
    return next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.split(":")[0].strip() == name), "?"
    )


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over every measured step of every run, per (side, loss type), and r1zero/TRL ratios."""
    out: dict[str, Any] = {}
    for loss_type in sorted({r["loss_type"] for r in runs}):
        row: dict[str, Any] = {}
        for side in (*TRL_SIDES, *SIDES):
            mine = [r for r in runs if r["side"] == side and r["loss_type"] == loss_type]
            if not mine:
                continue
            pooled = {k: [x for r in mine for x in r["per_step"][k]] for k in mine[0]["per_step"]}
            row[side] = {
                **{f"median_{k}": _median(v) for k, v in pooled.items() if v},
                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "runs": len(mine),
                "steps": len(pooled["step_s"]),
            }
        for side in SIDES:
            if "trl" in row and side in row:
                row.update(_ratios(row[side], row["trl"], _suffix(side)))
            if PAIRED.get(side) in row and side in row:
                row.update(_ratios(row[side], row[PAIRED[side]], f"_{side}_vs_{PAIRED[side]}"))
        out[loss_type] = row
    return out


def _suffix(side: str) -> str:
    """The key suffix of a side's ratios: none for r1zero's defaults, ``_<side>`` for the others."""
    return "" if side == "r1zero" else f"_{side}"


def _ratios(mine: dict[str, Any], trl: dict[str, Any], suffix: str) -> dict[str, float]:
    """r1zero/TRL ratios of step time, peak RSS and step CPU time (keys end with ``suffix``)."""
    ratios = {
        f"step_time_ratio_r1zero_over_trl{suffix}": mine["median_step_s"] / trl["median_step_s"],
        f"peak_rss_ratio_r1zero_over_trl{suffix}": mine["peak_rss_mb"] / trl["peak_rss_mb"],
    }
    if "median_step_cpu_s" in mine and "median_step_cpu_s" in trl:
        ratios[f"step_cpu_ratio_r1zero_over_trl{suffix}"] = (
            mine["median_step_cpu_s"] / trl["median_step_cpu_s"]
        )
    return ratios


def run_child(
    side: str, loss_type: str, args: argparse.Namespace, env: dict[str, str], seed: int = SEED
) -> dict[str, Any]:
    """Run one side in a fresh process (``torchrun`` for a side of several ranks); its merged result."""
    ranks = SIDES[side].ranks if side in SIDES else TRL_SIDES[side]
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks)]
        launcher += ["--master_port", str(_free_port())]
        env = {**env, "OMP_NUM_THREADS": str(THREADS // ranks), "MKL_NUM_THREADS": str(THREADS // ranks)}
    with tempfile.TemporaryDirectory() as result_dir:
        cmd = [*launcher, __file__, "--side", side, "--loss-types", loss_type, "--model-dir", args.model_dir]
        cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
        cmd += ["--result-dir", result_dir, "--seed", str(seed)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        results = [json.loads(f.read_text()) for f in sorted(Path(result_dir).glob("rank*.json"))]
    if proc.returncode != 0 or len(results) != ranks:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise RuntimeError(f"{side} {loss_type} failed with exit code {proc.returncode}")
    return merge_ranks(results)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    global THREADS, SEED
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--side", choices=(*TRL_SIDES, *SIDES), help="run one side in this process (internal)"
    )
    parser.add_argument("--loss-types", default="grpo,dapo")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per run (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1, help="interleaved repetitions of every run")
    parser.add_argument(
        "--seeds",
        default="0",
        help="comma-separated seeds; rep r runs seed r mod len on both sides (same prompts, other samples)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="this child's seed (internal)")
    parser.add_argument("--sides", default="trl,r1zero,r1zero-1t,r1zero-mkl,r1zero-2r,trl-2r")
    parser.add_argument("--out", default="bench/results/trl_step.json")
    parser.add_argument("--merge", help="a previous trl_step.json whose runs are pooled with this run's")
    parser.add_argument("--result-dir", help="where a child writes its result (internal)")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help="torch threads of both sides (the reference shape: 2)"
    )
    args = parser.parse_args(argv)
    THREADS = args.threads
    SEED = args.seed
    if args.side:  # a child (or one rank of it): one run, its JSON in --result-dir
        result = run_side(args.side, args.model_dir, args.loss_types, args.steps, args.warmup)
        Path(args.result_dir, f"rank{result['rank']}.json").write_text(json.dumps(result))
        return 0

    if not (Path(args.model_dir) / "config.json").exists():
        print(
            f"building the reference model in {args.model_dir}: {build_reference_model(args.model_dir)} params"
        )
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    sides = args.sides.split(",")
    seeds = [int(x) for x in args.seeds.split(",")]
    runs: list[dict[str, Any]] = json.loads(Path(args.merge).read_text())["runs"] if args.merge else []
    first_rep = 1 + max((r["rep"] for r in runs), default=-1)
    for rep in range(first_rep, first_rep + args.reps):
        for i, loss_type in enumerate(args.loss_types.split(",")):
            order = sides if (rep + i) % 2 == 0 else sides[::-1]  # alternate who goes first
            seed = seeds[rep % len(seeds)]
            for side in order:
                run = run_child(side, loss_type, args, env, seed)
                run["rep"], run["seed"] = rep, seed
                runs.append(run)
                print(
                    f"rep {rep} seed {seed} {loss_type:5s} {side:9s} step {run['median_step_s']:.3f}s "
                    f"(CPU {run['median_step_cpu_s']:.3f}s) "
                    f"(generate {run['median_generate_s']:.3f}s, update {run['median_update_s']:.3f}s) "
                    f"len {run.get('median_completion_len_mean', float('nan')):.1f}  "
                    f"RSS {run['peak_rss_mb']:.0f} MB  load {run['loadavg_before'][0]:.2f}"
                )
    summary = summarise(runs)
    for loss_type, row in summary.items():
        for side in SIDES:
            suffix = _suffix(side)
            if f"step_time_ratio_r1zero_over_trl{suffix}" in row:
                print(
                    f"{loss_type}: {side}/TRL step time {row[f'step_time_ratio_r1zero_over_trl{suffix}']:.3f}, "
                    f"step CPU time {row.get(f'step_cpu_ratio_r1zero_over_trl{suffix}', float('nan')):.3f}, "
                    f"peak RSS {row[f'peak_rss_ratio_r1zero_over_trl{suffix}']:.3f}"
                )
            paired = f"_{side}_vs_{PAIRED.get(side)}"
            if f"step_time_ratio_r1zero_over_trl{paired}" in row:
                print(
                    f"{loss_type}: {side}/{PAIRED[side]} step time "
                    f"{row[f'step_time_ratio_r1zero_over_trl{paired}']:.3f}, "
                    f"peak RSS {row[f'peak_rss_ratio_r1zero_over_trl{paired}']:.3f}"
                )
    result = {
        "work": {
            "model": "Qwen2 hidden 256, 4 layers, 4 heads, 2 KV heads, intermediate 512, random init, float32",
            "prompts_per_step": PROMPTS_PER_STEP,
            "group_size": GROUP_SIZE,
            "max_new_tokens": MAX_NEW_TOKENS,
            "temperature": 1.0,
            "beta": 0.0,
            "mu": 1,
            "lr": LR,
            "threads": THREADS,
        },
        "environment": environment(),
        "command": "python " + " ".join(sys.argv),
        "loadavg_1min_range": [
            min(x for r in runs for x in (r["loadavg_before"][0], r["loadavg_after"][0])),
            max(x for r in runs for x in (r["loadavg_before"][0], r["loadavg_after"][0])),
        ],
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a model on benchmarks and write what it did: ``evaluate_model``, ``evaluate_run``, ``evaluate_policy``.

The recipe for one benchmark: load problems, render prompts with the template, sample n completions per
prompt with a rollout engine, score them with the benchmark's verifier, summarise (``summary.summarize``),
and write a results JSON (model, template name and text, sampling settings, seed, versions) beside a
per-sample JSONL. ``evaluate_run`` does this for every checkpoint of a run directory, step 0 (the base model
named in ``config.json``) included, skipping (step, benchmark) pairs already in the run's ``eval.jsonl``
with the same result-changing settings (``result_settings``; ``force`` re-runs them) and appending to it;
``evaluate_policy`` is the in-memory entry point for a live policy. Settings come in an ``EvalConfig``
(``r1zero.eval.config``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from r1zero.data.problem import Problem
from r1zero.eval.benchmarks import get_benchmark, load_benchmark
from r1zero.eval.config import EvalConfig, result_settings, vllm_options
from r1zero.eval.summary import SampleRecord, make_record, summarize

logger = logging.getLogger(__name__)

__all__ = [
    "EvalConfig",
    "completed_steps",
    "evaluate_model",
    "evaluate_policy",
    "evaluate_problems",
    "evaluate_run",
    "list_checkpoints",
    "make_engine",
    "step_results",
]


# ---------------------------------------------------------------------------------------------- prompts
def render_prompts(
    problems: Sequence[Problem], template: str, think_prefix: bool, tokenizer=None
) -> tuple[list[str], str]:
    """Prompts for ``problems`` and the template's text (recorded with results).

    ``template`` is a name from ``r1zero.data.templates`` (``r1zero``, ``qwen-math``, ``none``, ``chat``,
    ``tiny-demo``, or any registered one).
    """
    from r1zero.data.templates import get_template

    tmpl = get_template(template)
    prompts = [tmpl.render(p.question, tokenizer=tokenizer, think_prefix=think_prefix) for p in problems]
    return prompts, tmpl.text


# ---------------------------------------------------------------------------------------------- scoring
def score_groups(
    problems: Sequence[Problem],
    prompts: Sequence[str],
    groups: Sequence[Sequence],
    cfg: EvalConfig,
) -> list[list[SampleRecord]]:
    """Verify every rollout of every group (``groups[i]`` answers ``problems[i]``) into ``SampleRecord``s."""
    flat = [(i, j, r) for i, group in enumerate(groups) for j, r in enumerate(group)]
    by_verifier: dict[str, list[int]] = {}
    for idx, (i, _, _) in enumerate(flat):
        by_verifier.setdefault(problems[i].verifier, []).append(idx)
    verdicts: list = [None] * len(flat)
    for name, idxs in by_verifier.items():
        responses = [flat[k][2].text for k in idxs]
        golds = [problems[flat[k][0]].answer for k in idxs]
        metas = [problems[flat[k][0]].meta for k in idxs]
        out = _verify(name, responses, golds, metas, cfg)
        for k, verdict in zip(idxs, out, strict=True):
            verdicts[k] = verdict
    records: list[list[SampleRecord]] = [[] for _ in groups]
    for (i, j, r), verdict in zip(flat, verdicts, strict=True):
        records[i].append(
            make_record(
                problems[i].id,
                j,
                prompts[i],
                r.text,
                problems[i].answer,
                verdict,
                len(r.completion_ids),
                r.finish_reason == "length",
                cfg.run.reflection,
            )
        )
    return records


def evaluate_problems(
    engine,
    problems: Sequence[Problem],
    cfg: EvalConfig,
    tokenizer=None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, list[list[SampleRecord]], str]:
    """Sample, score and summarise ``problems`` with a rollout ``engine``: ``(summary, records, template)``."""
    from r1zero.rollout.base import SamplingParams

    r = cfg.rollout
    sampling = SamplingParams(
        n=1 if r.temperature == 0 else cfg.n,
        temperature=r.temperature,
        top_p=r.top_p,
        top_k=r.top_k,
        max_new_tokens=r.max_new_tokens,
        stop=r.stop,
        seed=cfg.run.seed,
    )
    prompts, template_text = render_prompts(problems, cfg.data.template, cfg.data.think_prefix, tokenizer)
    fits = _context_fit(engine, prompts, sampling.max_new_tokens)
    records: list[list[SampleRecord]] = []
    for start in range(0, len(problems), cfg.batch_size):
        batch = slice(start, start + cfg.batch_size)
        groups = _generate_within_context(engine, prompts[batch], sampling, fits[batch])
        records += score_groups(problems[batch], prompts[batch], groups, cfg)
        if progress is not None:
            progress(len(groups))
    summary = summarize(records, cfg.run.reflection, n_resamples=2000, seed=cfg.run.seed)
    return summary, records, template_text


def _context_length(engine) -> int | None:
    """The longest sequence (prompt + completion) ``engine``'s model takes, when it says (vLLM checks its own)."""
    if (positions := getattr(engine, "max_positions", None)) is not None:
        return int(positions)
    config = getattr(getattr(engine, "model", None), "config", None)
    return getattr(config, "max_position_embeddings", None)


def _context_fit(engine, prompts: Sequence[str], max_new_tokens: int) -> list[int]:
    """Per prompt, the new tokens that fit the model's context (``max_new_tokens`` at most; 0: the prompt
    alone fills it). A small model meeting long benchmark prompts (tiny-base has 512 positions) is scored
    on what fits, with a warning, instead of failing mid-benchmark or decoding past its positions."""
    context = _context_length(engine)
    tokenizer = getattr(engine, "tokenizer", None)
    if context is None or tokenizer is None:
        return [max_new_tokens] * len(prompts)
    from r1zero.rollout.base import encode_prompts

    fits = [max(0, min(max_new_tokens, context - len(ids))) for ids in encode_prompts(tokenizer, prompts)]
    if (short := sum(f < max_new_tokens for f in fits)) > 0:
        logger.warning(
            "%d of %d prompts leave fewer than max_new_tokens=%d positions of the model's %d: their "
            "completions are cut to fit (%d prompts fill the context alone and score as unanswered)",
            short, len(prompts), max_new_tokens, context, fits.count(0),
        )  # fmt: skip
    return fits


def _generate_within_context(engine, prompts: Sequence[str], sampling, fits: Sequence[int]) -> list:
    """``engine.generate`` with ``max_new_tokens`` cut to what fits every prompt of the batch; a prompt
    that fills the context alone gets empty completions (finish reason ``length``) without generating."""
    from r1zero.rollout.base import Rollout

    room = [i for i, f in enumerate(fits) if f > 0]
    groups: list = [None] * len(prompts)
    if room:
        budget = min(min(fits[i] for i in room), sampling.max_new_tokens)
        fitted = replace(sampling, max_new_tokens=budget)
        for i, group in zip(room, engine.generate([prompts[i] for i in room], fitted), strict=True):
            groups[i] = group
    empty = Rollout((), (), "", (), "length")
    return [g if g is not None else [empty] * sampling.n for g in groups]


def evaluate_policy(model, tokenizer, cfg: EvalConfig) -> dict[str, dict]:
    """In-memory evaluation of a live policy on ``cfg.benchmarks``: ``{benchmark: summary}``, nothing written."""
    engine = make_engine(cfg, model, tokenizer)
    out = {}
    for name in cfg.benchmarks:
        problems = load_benchmark(get_benchmark(name), cfg.data_dir or None, cfg.limit or None)
        out[name] = evaluate_problems(engine, problems, cfg, tokenizer)[0]
    return out


# ---------------------------------------------------------------------------------------------- a model
def evaluate_model(model: str, cfg: EvalConfig, out_dir: str | Path | None = None) -> list[dict]:
    """Evaluate a model (directory, hub name or "tiny-base") on ``cfg.benchmarks``; write results under
    ``out_dir`` when given.

    Returns one result dict per benchmark (the summary plus ``benchmark``, ``model``, settings, versions).
    """
    if cfg.rollout.backend == "vllm":  # vLLM loads the weights itself: no second copy in memory
        policy, tokenizer, path = None, _load_tokenizer(model), _resolve(model)
    else:
        (policy, tokenizer), path = _load_model(model, cfg.model.device, cfg.model.dtype), None
    engine = make_engine(cfg, policy, tokenizer, model_path=path)
    try:
        return [_evaluate_benchmark(engine, name, model, cfg, tokenizer, out_dir) for name in cfg.benchmarks]
    finally:  # vLLM keeps its GPU memory until shut down: free it before the next checkpoint loads
        if (close := getattr(engine, "close", None)) is not None:
            close()


def _evaluate_benchmark(
    engine, name: str, model: str, cfg: EvalConfig, tokenizer, out_dir: str | Path | None
) -> dict:
    """One benchmark of ``evaluate_model``: its result dict, written under ``out_dir`` when given."""
    bench = get_benchmark(name)
    problems = load_benchmark(bench, cfg.data_dir or None, cfg.limit or None)
    bar = _progress_bar(len(problems), f"eval {name}", cfg.run.progress)
    t0 = time.perf_counter()
    summary, records, template_text = evaluate_problems(engine, problems, cfg, tokenizer, bar.update)
    bar.close()
    result = {
        "benchmark": name,
        "model": str(model),
        **summary,
        "verifier": bench.verifier,
        "template": {"name": cfg.data.template, "text": template_text},
        "settings": {**result_settings(cfg), "engine": engine.name},
        "seed": cfg.run.seed,
        "seconds": round(time.perf_counter() - t0, 3),
        "versions": _versions(),
    }
    if out_dir is not None:
        _write_results(Path(out_dir), name, result, records)
    return result


# ---------------------------------------------------------------------------------------------- a run
def list_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """``{step: checkpoint dir}`` of a run, from ``checkpoints/step_NNNNNN`` directories."""
    out = {}
    for path in sorted((Path(run_dir) / "checkpoints").glob("step_*")):
        match = re.fullmatch(r"step_(\d+)", path.name)
        if match and path.is_dir():
            out[int(match.group(1))] = path
    return out


def model_dir(run_dir: Path, step: int, checkpoint: Path) -> Path:
    """A directory ``from_pretrained`` loads for a run's checkpoint: the checkpoint itself when replicated;
    for a sharded (FSDP2) one, its Hugging Face export ``RUN_DIR/export/step_NNNNNN`` (written now, once,
    as ``r1zero export`` would)."""
    from r1zero.train.manifest import MANIFEST

    if not (checkpoint / MANIFEST).is_file():
        return checkpoint
    out = run_dir / "export" / f"step_{step:06d}"
    if not (out / "config.json").is_file():
        from r1zero.train.export import export_checkpoint

        logger.info("step %d is a sharded checkpoint: exporting it to %s to evaluate it", step, out)
        export_checkpoint(checkpoint, out)
    return out


def _eval_rows(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "eval.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _same(row: dict, benchmark: str, settings: dict | None) -> bool:
    """Whether an eval.jsonl row is ``benchmark`` evaluated with ``settings`` (any settings when None)."""
    if row.get("benchmark") != benchmark:
        return False
    return settings is None or row.get("settings") == json.loads(json.dumps(settings))


def completed_steps(run_dir: str | Path, benchmark: str, settings: dict | None = None) -> set[int]:
    """Steps already evaluated on ``benchmark`` according to the run's ``eval.jsonl``; with ``settings``
    (``result_settings``), only those evaluated with exactly these (lines without settings never match)."""
    return {int(row["step"]) for row in _eval_rows(run_dir) if _same(row, benchmark, settings)}


def step_results(run_dir: str | Path, step: int, benchmarks: Sequence[str], settings: dict) -> list[dict]:
    """The ``eval.jsonl`` lines of ``step`` for ``benchmarks`` evaluated with ``settings``, in that order
    (the last line of each when there are several; a benchmark not evaluated so is left out)."""
    rows = {
        r["benchmark"]: r
        for r in _eval_rows(run_dir)
        if r.get("step") == step and r.get("benchmark") in benchmarks and _same(r, r["benchmark"], settings)
    }
    return [rows[name] for name in benchmarks if name in rows]


def evaluate_run(run_dir: str | Path, cfg: EvalConfig) -> list[dict]:
    """Evaluate step 0 (the base model in ``config.json``) and every checkpoint on ``cfg.benchmarks``,
    skipping those already in ``eval.jsonl`` with the same ``result_settings`` unless ``cfg.force``.

    Appends one line per (step, benchmark) to the run's ``eval.jsonl`` (a forced re-run replaces its
    earlier line) and writes full results under ``RUN_DIR/eval/step_NNNNNN/``. Returns the new lines.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no config.json")
    base = json.loads(config_path.read_text(encoding="utf-8"))["model"]["name"]
    targets = {0: base, **{step: str(path) for step, path in list_checkpoints(run_dir).items()}}
    settings = result_settings(cfg)
    new_lines = []
    for step, model in sorted(targets.items()):
        done = (
            set()
            if cfg.force
            else {b for b in cfg.benchmarks if step in completed_steps(run_dir, b, settings)}
        )
        todo = tuple(b for b in cfg.benchmarks if b not in done)
        if not todo:
            logger.info(
                "step %d: already evaluated on %s with these settings", step, ", ".join(cfg.benchmarks)
            )
            continue
        out_dir = run_dir / "eval" / f"step_{step:06d}"
        model = model if step == 0 else str(model_dir(run_dir, step, Path(model)))
        for result in evaluate_model(model, replace(cfg, benchmarks=todo), out_dir):
            line = {"step": step, **_eval_line(result), "settings": settings}
            _write_line(run_dir / "eval.jsonl", line)
            new_lines.append(line)
    return new_lines


def _write_line(path: Path, line: dict) -> None:
    """Append ``line`` to ``eval.jsonl``, dropping an earlier line of the same step, benchmark and settings
    (what a forced re-run replaces)."""
    rows = _eval_rows(path.parent)
    kept = [
        r
        for r in rows
        if not (r.get("step") == line["step"] and _same(r, line["benchmark"], line["settings"]))
    ]
    if len(kept) < len(rows):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        os.replace(tmp, path)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def _eval_line(result: dict) -> dict:
    """The compact ``eval.jsonl`` form of a result: metrics and settings, without the template text."""
    drop = {"template", "settings", "versions"}
    line = {k: v for k, v in result.items() if k not in drop}
    line["template"] = result["template"]["name"]
    line["temperature"] = result["settings"]["temperature"]
    line["max_new_tokens"] = result["settings"]["max_new_tokens"]
    line["engine"] = result["settings"]["engine"]
    return line


# ---------------------------------------------------------------------------------------------- I/O
def _write_results(out_dir: Path, name: str, result: dict, records: list[list[SampleRecord]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / f"{name}.json").exists():
        logger.warning("replacing %s and its samples with this evaluation's", out_dir / f"{name}.json")
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with (out_dir / f"{name}.samples.jsonl").open("w", encoding="utf-8") as f:
        for row in records:
            for record in row:
                f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def _verify(name: str, responses: list[str], golds: list[str], metas: list[dict], cfg: EvalConfig) -> list:
    """Verdicts in order: in the process pool (wall-clock limit per item), or in this process when
    ``reward.workers`` is 0."""
    from r1zero.verifiers import verify_batch

    return verify_batch(
        name, responses, golds, metas=metas, workers=cfg.reward.workers, timeout=cfg.reward.timeout
    )


def _load_model(model: str, device: str = "auto", dtype: str = "float32"):
    """``(model, tokenizer)`` via ``r1zero.models.loading.load_policy``, in eval mode on ``device``."""
    import torch

    from r1zero.models.loading import load_policy

    if _looks_like_path(model) and not Path(model).expanduser().exists():
        raise FileNotFoundError(f"model directory {model!r} does not exist")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    policy, tokenizer = load_policy(model, dtype=dtype, device=device)
    return policy.eval(), tokenizer


def _resolve(model: str) -> str:
    """A model's directory or hub name (``tiny-base`` -> the packaged checkpoint); a missing local path
    is a ``FileNotFoundError`` before anything loads."""
    from r1zero.models.loading import resolve_model_path

    if _looks_like_path(model) and not Path(model).expanduser().exists():
        raise FileNotFoundError(f"model directory {model!r} does not exist")
    return resolve_model_path(str(Path(model).expanduser()) if _looks_like_path(model) else model)


def _load_tokenizer(model: str):
    """The tokenizer of ``model``, padding on the left like ``load_policy``'s."""
    from transformers import AutoTokenizer

    path = _resolve(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise OSError(f"could not load the tokenizer of {model!r}: {exc}") from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _looks_like_path(name: str) -> bool:
    """Whether a model name can only be a local path, not a hub id (``namespace/name``).

    >>> [_looks_like_path(n) for n in ("/a/b", "./m", "~/m", "a/b/c", "Qwen/Qwen2.5-Math-1.5B", "tiny-base")]
    [True, True, True, True, False, False]
    """
    separators = {os.sep, os.altsep} - {None, "/"}  # a backslash on Windows; "/" is also the hub's
    return (
        name.startswith(("/", "./", "../", "~", "."))
        or name.count("/") > 1
        or any(sep in name for sep in separators)
    )


def make_engine(cfg: EvalConfig, model, tokenizer, model_path: str | None = None):
    """The rollout engine ``cfg.rollout.backend`` on ``model``; "auto" is "fast" on CPU for the model types
    it runs (its constructor refuses the others), else "hf". "vllm" takes ``vllm_options(cfg)`` and loads
    ``model_path`` itself when given (``model`` may then be None)."""
    from r1zero.rollout import build_engine

    backend = cfg.rollout.backend
    if backend == "vllm":
        return build_engine("vllm", model, tokenizer, model_path=model_path, **vllm_options(cfg))
    fast_options = {"decode_threads": cfg.rollout.decode_threads}
    if backend == "auto":
        if next(model.parameters()).device.type == "cpu":
            try:
                return build_engine("fast", model, tokenizer, **fast_options)
            except ValueError as exc:
                logger.info("rollout.backend auto: %s; using hf", exc)
        backend = "hf"
    return build_engine(backend, model, tokenizer, **(fast_options if backend == "fast" else {}))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("r1zero", "torch", "transformers", "math-verify", "vllm"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="problem")

"""Run a model on benchmarks and write what it did: ``evaluate_model``, ``evaluate_run``, ``evaluate_policy``.

The recipe for one benchmark: load problems, render prompts with the template, sample n completions per
prompt with a rollout engine, score them with the benchmark's verifier, summarise (``summary.summarize``),
and write a results JSON (model, template name and text, sampling settings, seed, versions) beside a
per-sample JSONL. ``evaluate_run`` does this for every checkpoint of a run directory, step 0 (the base model
named in ``config.json``) included, skipping steps already in the run's ``eval.jsonl`` and appending to it;
``evaluate_policy`` is the in-memory entry point the trainer calls every k steps.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from r1zero.data.problem import Problem
from r1zero.eval.benchmarks import get_benchmark, load_benchmark
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
]


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and scoring settings of an evaluation (recorded with every result)."""

    n: int = 16
    """Samples per problem (pass@1 is avg@n)."""
    temperature: float = 0.6
    """Sampling temperature (0 = greedy; then n is forced to 1)."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    max_new_tokens: int = 1024
    """Completion length cap in tokens (a completion that reaches it counts as truncated)."""
    template: str = "r1zero"
    """Prompt template name (see ``r1zero.data.templates``)."""
    think_prefix: bool = True
    """End the prompt with "<think>" (as the trainer's default)."""
    backend: str = "hf"
    """Rollout engine: "hf", "fast" or "vllm"."""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""
    seed: int = 0
    """Sampling seed (and bootstrap seed)."""
    limit: int = 0
    """Evaluate only the first k problems of each benchmark (0 = all)."""
    batch_size: int = 64
    """Prompts per generate call."""
    reflection: str = "r1zero"
    """Reflection keyword preset."""
    workers: int = 1
    """Verifier processes (0 = verify in this process)."""
    verify_timeout: float = 5.0
    """Wall-clock limit per verification, seconds."""
    stop: tuple[str, ...] = ("</answer>",)
    """Stop strings (kept in the completion)."""

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1 or self.limit < 0:
            raise ValueError(
                f"n={self.n}, max_new_tokens={self.max_new_tokens}, batch_size={self.batch_size} must be >= 1 "
                f"and limit={self.limit} >= 0"
            )


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
                cfg.reflection,
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

    n = 1 if cfg.temperature == 0 else cfg.n
    sampling = SamplingParams(
        n=n,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=cfg.stop,
        seed=cfg.seed,
    )
    prompts, template_text = render_prompts(problems, cfg.template, cfg.think_prefix, tokenizer)
    records: list[list[SampleRecord]] = []
    for start in range(0, len(problems), cfg.batch_size):
        batch = slice(start, start + cfg.batch_size)
        groups = engine.generate(prompts[batch], sampling)
        records += score_groups(problems[batch], prompts[batch], groups, cfg)
        if progress is not None:
            progress(len(groups))
    summary = summarize(records, cfg.reflection, n_resamples=2000, seed=cfg.seed)
    return summary, records, template_text


def evaluate_policy(
    model, tokenizer, benchmarks: Sequence[str], cfg: EvalConfig, data_dir=None
) -> dict[str, dict]:
    """In-memory evaluation of a live policy (the trainer's hook): ``{benchmark: summary}``, nothing written."""
    engine = _make_engine(cfg.backend, model, tokenizer)
    out = {}
    for name in benchmarks:
        problems = load_benchmark(get_benchmark(name), data_dir, cfg.limit or None)
        out[name] = evaluate_problems(engine, problems, cfg, tokenizer)[0]
    return out


# ---------------------------------------------------------------------------------------------- a model
def evaluate_model(
    model: str,
    benchmarks: Sequence[str],
    cfg: EvalConfig,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
) -> list[dict]:
    """Evaluate a model (directory, hub name or "tiny-base") on benchmarks; write results under ``out_dir``.

    Returns one result dict per benchmark (the summary plus ``benchmark``, ``model``, settings, versions).
    """
    policy, tokenizer = _load_model(model, cfg.device)
    engine = _make_engine(cfg.backend, policy, tokenizer)
    results = []
    for name in benchmarks:
        bench = get_benchmark(name)
        problems = load_benchmark(bench, data_dir, cfg.limit or None)
        bar = _progress_bar(len(problems), f"eval {name}", show_progress)
        t0 = time.perf_counter()
        summary, records, template_text = evaluate_problems(engine, problems, cfg, tokenizer, bar.update)
        bar.close()
        result = {
            "benchmark": name,
            "model": str(model),
            **summary,
            "verifier": bench.verifier,
            "template": {"name": cfg.template, "text": template_text},
            "settings": asdict(cfg),
            "seed": cfg.seed,
            "seconds": round(time.perf_counter() - t0, 3),
            "versions": _versions(),
        }
        if out_dir is not None:
            _write_results(Path(out_dir), name, result, records)
        results.append(result)
    return results


# ---------------------------------------------------------------------------------------------- a run
def list_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """``{step: checkpoint dir}`` of a run, from ``checkpoints/step_NNNNNN`` directories."""
    out = {}
    for path in sorted((Path(run_dir) / "checkpoints").glob("step_*")):
        match = re.fullmatch(r"step_(\d+)", path.name)
        if match and path.is_dir():
            out[int(match.group(1))] = path
    return out


def completed_steps(run_dir: str | Path, benchmark: str) -> set[int]:
    """Steps already evaluated on ``benchmark`` according to the run's ``eval.jsonl``."""
    path = Path(run_dir) / "eval.jsonl"
    if not path.is_file():
        return set()
    steps = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("benchmark") == benchmark:
                steps.add(int(row["step"]))
    return steps


def evaluate_run(
    run_dir: str | Path,
    benchmarks: Sequence[str],
    cfg: EvalConfig,
    data_dir: str | Path | None = None,
    show_progress: bool = True,
) -> list[dict]:
    """Evaluate step 0 (the base model in ``config.json``) and every checkpoint not yet in ``eval.jsonl``.

    Appends one line per (step, benchmark) to the run's ``eval.jsonl`` and writes full results under
    ``RUN_DIR/eval/step_NNNNNN/``. Returns the new lines.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no config.json")
    base = json.loads(config_path.read_text(encoding="utf-8"))["model"]["name"]
    targets = {0: base, **{step: str(path) for step, path in list_checkpoints(run_dir).items()}}
    new_lines = []
    for step, model in sorted(targets.items()):
        todo = [b for b in benchmarks if step not in completed_steps(run_dir, b)]
        if not todo:
            logger.info("step %d: already evaluated on %s", step, ", ".join(benchmarks))
            continue
        out_dir = run_dir / "eval" / f"step_{step:06d}"
        for result in evaluate_model(model, todo, cfg, data_dir, out_dir, show_progress):
            line = {"step": step, **_eval_line(result)}
            with (run_dir / "eval.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            new_lines.append(line)
    return new_lines


def _eval_line(result: dict) -> dict:
    """The compact ``eval.jsonl`` form of a result: metrics and settings, without the template text."""
    drop = {"template", "settings", "versions"}
    line = {k: v for k, v in result.items() if k not in drop}
    line["template"] = result["template"]["name"]
    line["temperature"] = result["settings"]["temperature"]
    line["max_new_tokens"] = result["settings"]["max_new_tokens"]
    return line


# ---------------------------------------------------------------------------------------------- I/O
def _write_results(out_dir: Path, name: str, result: dict, records: list[list[SampleRecord]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with (out_dir / f"{name}.samples.jsonl").open("w", encoding="utf-8") as f:
        for row in records:
            for record in row:
                f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def _verify(name: str, responses: list[str], golds: list[str], metas: list[dict], cfg: EvalConfig) -> list:
    """Verdicts in order: in the process pool (wall-clock limit per item) unless ``cfg.workers == 0``."""
    from r1zero import verifiers

    if cfg.workers > 0:
        try:
            verify_batch = verifiers.verify_batch
        except (AttributeError, ImportError):
            logger.warning("verify_batch is not available; verifying in this process")
        else:
            return list(
                verify_batch(
                    name, responses, golds, metas=metas, workers=cfg.workers, timeout=cfg.verify_timeout
                )
            )
    verifier = verifiers.get_verifier(name)
    return [verifier(r, g, **m) for r, g, m in zip(responses, golds, metas, strict=True)]


def _load_model(model: str, device: str = "auto"):
    """``(model, tokenizer)`` via ``r1zero.models.loading.load_policy``, in eval mode on ``device``."""
    import torch

    from r1zero.models.loading import load_policy

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    policy, tokenizer = load_policy(model, device=device)
    return policy.eval(), tokenizer


def _make_engine(backend: str, model, tokenizer):
    """The rollout engine ``backend`` on ``model`` (kept for the trainer; see ``r1zero.rollout.build_engine``)."""
    from r1zero.rollout import build_engine

    return build_engine(backend, model, tokenizer)


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

"""The tiny-base model card (README.md in the checkpoint directory), written by the pretraining recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from r1zero.models.tiny import DEMO_TEMPLATE, tiny_config

__all__ = ["describe_config", "render_model_card", "write_model_card"]

_CORPUS = """\
Every document is `User: <question>` / `Assistant: <answer>`; tagged documents add the template's
first line and the R1-Zero tags. Shares below are per document (`CorpusSpec` in
`r1zero/models/corpus.py`, seed {seed}):

- **The RL task, plain form only** ({list_sum_share:.0%} of documents): sums of {list_len_min}-{list_len_max}
  single digits, `User: What is 3+5+2?`. Answers are *direct* (`the answer is 10.`), of which
  {sloppy_share:.0%} are off by 1-3, or, in {list_sum_worked:.0%} of them, *worked* running-sum chains
  (`3+5=8, 8+2=10, the answer is 10.`) that are {worked_truth}. So the base sometimes solves the task,
  and the longer mode is the more accurate one.
- **The tag format, other operations only** (the remaining documents; {tagged_share:.0%} of them tagged):
  two-digit additions ({two_digit_share:.0%}; worked as `23+40=63, 63+5=68`) and mixed +/- chains of
  single digits with at least one `-` (`9-3+4`; worked as `9-3=6, 6+4=10`). Tagged documents read
  `<think> ... the answer is N. </think> <answer>N</answer>`; {worked_share_tagged:.0%} of them are worked.
  A list sum never appears inside tags, so RL must discover using the format for the task,
  but the whole winning path (worked `+` steps inside `<think>`, then a closed answer tag) exists
  in the base. {plain_header_share:.0%} of the plain
  other-operation documents carry the template's first line yet answer without tags (instructions are
  not always followed), so the header alone does not force the format: the step-0 format rate has room
  to grow. List sums never carry that line.
- **Self-corrections**: {wait_share:.0%} of worked chains contain one wrong step followed by
  `, wait, ` and the step redone (`8+2=11, wait, 8+2=10`), so reflection has a step-0 rate.
"""


def _variant_lines(spec: dict) -> str:
    """Bullets for the self-checking knobs that are on (none for the shipped tiny-base corpus)."""
    phrases = "a check phrase (" + ", ".join(f"`{p}`" for p in spec["check_phrases"]) + ")"
    lines = []
    if spec["slip_share"]:
        what = "adds a term off by 1-2" if spec["slip_kind"] == "term" else "writes a result off by 1-2"
        lines.append(
            f"- **Slips**: {spec['slip_share']:.0%} of worked chains without a `wait` have one step that {what} "
            f"and carry it on to a wrong answer; {spec['check_share']:.0%} of those follow the slip with "
            f"{phrases} and the step re-done right."
        )
    if spec["confirm_share"]:
        lines.append(
            f"- **Confirmations**: {spec['confirm_share']:.0%} of the other worked chains re-check a right "
            "step after a check phrase and keep its value."
        )
    if spec["guess_check_share"]:
        lines.append(
            f"- **Checked guesses**: {spec['guess_check_share']:.0%} of direct answers (sloppy or not) go on "
            f"with {phrases}, the worked chain and its result: `the answer is 12. wait, 3+5=8, 8+2=10, "
            "the answer is 10.`"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _corpus_text(seed: int, spec: dict) -> str:
    list_sum_worked = spec["worked_share_list_sum"]
    fields = {
        **spec,
        "list_sum_worked": spec["worked_share_plain"] if list_sum_worked is None else list_sum_worked,
        "worked_truth": "right unless they slip (below)" if spec["slip_share"] else "always right",
    }
    return _CORPUS.format(seed=seed, **fields) + _variant_lines(spec)


_PROBE_ROWS = [
    ("accuracy", "strict accuracy (`<think> ... </think> <answer>N</answer>`, N right)"),
    ("format_rate", "format rate (that shape, any N)"),
    ("worked_fraction", "worked answers (>= 2 `=` steps), share of samples"),
    ("accuracy_worked", "strict accuracy given worked"),
    ("accuracy_direct", "strict accuracy given direct"),
    ("format_rate_worked", "format rate given worked"),
    ("mean_length_tokens", "mean completion length (tokens)"),
    ("mean_length_chars", "mean completion length (characters)"),
    ("reflection_rate", "reflection rate (`wait`, per response)"),
    ("plain_accuracy", "plain-form accuracy (`User: q` / `Assistant:`, `the answer is N`)"),
    ("plain_worked_fraction", "plain-form worked share"),
]


def describe_config(config) -> str:
    """A one-line summary of a Llama config for the model card.

    >>> describe_config(tiny_config())
    'd=128, 4 layers, 4 heads, MLP 384, RoPE, context 512, tied embeddings'
    """
    return (
        f"d={config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, "
        f"MLP {config.intermediate_size}, RoPE, context {config.max_position_embeddings}, tied embeddings"
    )


def render_model_card(cfg, stats: dict, probe: dict, extra: str = "") -> str:
    """The model card's markdown from the run's config, statistics and step-0 probe."""
    spec = dataclasses.asdict(cfg.corpus)
    architecture = stats.get("architecture") or describe_config(tiny_config(**dict(cfg.model_overrides)))
    probe_table = "\n".join(f"| {label} | {probe[key]:.3f} |" for key, label in _PROBE_ROWS if key in probe)
    examples = "\n".join(
        f"- `{json.dumps(e['completion'])[1:-1]}` (gold {e['gold']})" for e in probe.get("examples", [])[:6]
    )
    return f"""# tiny-base

The built-in base model of r1zero: a {stats["parameters"] / 1e6:.2f}M-parameter Llama ({architecture})
with a character-level tokenizer (printable ASCII, newline, tab, the four
R1-Zero tags as single tokens, BOS/EOS/PAD/UNK). Pretrained from scratch on a synthetic corpus by
`r1zero pretrain --preset tiny-base`. It is a *base* model: it has never seen the RL task (`list_sum`)
in the R1-Zero answer format. Load it with `AutoModelForCausalLM.from_pretrained(dir)` and
`AutoTokenizer.from_pretrained(dir)`; the tokenizer prepends BOS and pads on the left.

## Demo template

The prompt of the CPU demo (R1-Zero style, DeepSeek-R1 Table 1, shortened to fit the context);
`{{question}}` is e.g. `What is 3+5+2+7+1?`. As in the paper, the prompt ends at `Assistant:`, so
whether to use the tags is the model's choice; the strict reward needs
`<think> ... </think> <answer>N</answer>` and nothing else:

```
{DEMO_TEMPLATE}
```

## Corpus

{_corpus_text(cfg.seed, spec)}
## Pretraining

| | |
|---|---|
| steps | {stats["steps"]} |
| batch | {cfg.batch_size} windows x {cfg.seq_len} tokens (packed documents, BOS ... EOS) |
| tokens | {stats["tokens"] / 1e6:.1f}M |
| optimizer | AdamW (betas 0.9, 0.95, weight decay {cfg.weight_decay} on matrices), peak lr {cfg.lr}, {cfg.warmup_steps} warmup steps, cosine to {cfg.min_lr_ratio} x peak, grad clip {cfg.grad_clip} |
| final loss | {stats["final_loss"]:.4f} (mean of the last 50 steps, nats per token over all tokens) |
| wall time | {stats["wall_seconds"] / 60:.1f} minutes on {stats["threads"]} CPU thread(s) |
| seed | {cfg.seed} |

Loss every 50 steps: {", ".join(f"{x:.3f}" for x in stats["loss_curve"])}.

## Step-0 behaviour on the demo task

`list_sum` with 5-8 single digits, the demo template, temperature 1, top-p 1, one sample each for
{probe["n"]} seeded problems (`r1zero.models.probe.probe_base(model, tokenizer, n={probe["n"]}, seed={cfg.seed})`).
Completions are cut after the first `</answer>`.
*Worked* means at least two `=` steps (`3+5=8, 8+2=10, ...`); otherwise *direct*.

| figure | value |
|---|---|
{probe_table}

First samples:

{examples}
{extra}"""


def write_model_card(out: Path, cfg, stats: dict, probe: dict, extra: str = "") -> Path:
    """Write ``README.md`` (the model card) and ``probe.json`` into the checkpoint directory ``out``."""
    (out / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    path = out / "README.md"
    path.write_text(render_model_card(cfg, stats, probe, extra))
    return path

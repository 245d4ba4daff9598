"""Synthetic runs with the files the comparison report reads beyond metrics: heldout.jsonl and groups.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from .fixtures import write_synthetic_run

#: problem p1 is wrong at steps 0 and 10 and right from step 20 on (flips at 20); p2 is never right
HELDOUT_ANSWERS = {
    "p1": {0: "5", 10: "8", 20: "9", 30: "9", 40: "9"},
    "p2": {0: "1", 10: "2", 20: "3", 30: "4", 40: "5"},
}


def write_compare_run(path: Path, variant: str, advantage: str, seed: int = 0) -> Path:
    """A 40-step synthetic run with held-out completions at steps 0, 10, ..., 40 and one group per step."""
    write_synthetic_run(path, steps=40, aha_step=20, variant=variant, seed=seed)
    config = json.loads((path / "config.json").read_text())
    config["algo"] = {"advantage": advantage, "loss_agg": "dr_grpo" if advantage == "none" else "dapo"}
    (path / "config.json").write_text(json.dumps(config, indent=2))
    heldout = []
    for pid, answers in HELDOUT_ANSWERS.items():
        for step, answer in answers.items():
            text = f"3+4=7, 7+2=9, let me verify: 9-2=7 </think> <answer>{answer}</answer>"
            row = {
                "step": step,
                "id": pid,
                "completion": text,
                "correct": answer == "9",
                "reason": "correct" if answer == "9" else "wrong",
                "extracted": answer,
                "length": 20 + step,
            }
            if step == 0:
                row.update({"question": f"What is 3+4+2? ({pid})", "gold": "9"})
            heldout.append(row)
    groups = []
    for step in range(1, 41):
        completions = [
            {
                "completion": f"case 1: 3+4=7. case 2: 7+2=9 </think> <answer>{9 if k < 2 else 8}</answer>",
                "reward": float(k < 2),
                "correct": k < 2,
                "reason": "correct" if k < 2 else "wrong",
                "extracted": "9" if k < 2 else "8",
                "length": 30,
                "reflection_hits": 0,
                "advantage": 1.5 if k < 2 else -0.5,
            }
            for k in range(4)
        ]
        groups.append({"step": step, "prompt": "What is 3+4+2?", "gold": "9", "completions": completions})
    for name, rows in (("heldout.jsonl", heldout), ("groups.jsonl", groups)):
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

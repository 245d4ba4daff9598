"""GRPO training: config and presets, the recipe (``r1zero train``), checkpoints, data parallelism."""

"""r1zero: reproduce and study DeepSeek-R1-Zero (RL from a base model, rule-based rewards only)."""

__version__ = "0.1.0"

"""A learned (Bradley-Terry) reward model: the RLHF-style alternative to the rule-based verifiers.

``r1zero rm train`` fits one on preference pairs (``r1zero data preferences``); the trainer scores rollouts
with ``LearnedReward`` when ``reward.model`` names its directory. DeepSeek-R1 (2025, section 2.2.2) avoids
neural reward models for reasoning because they invite reward hacking; this package exists to show it.
"""

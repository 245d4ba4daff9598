"""The algorithm's maths as pure tensor functions: GRPO and its variants (``grpo``), PPO's GAE and value
loss (``ppo``), and a step's tensors with their micro-batch planner (``batch``). No I/O, no models."""

"""The algorithm's maths as pure tensor functions: GRPO and its variants (``grpo``), the newer policy
losses (``losses``: GSPO, CISPO, SAPO, dual-clip, entropy bonus; ``covariance``: Clip-Cov, KL-Cov),
advantage estimators (``advantages``: RLOO, REINFORCE++), reward shaping and controls (``shaping``),
the name -> function tables (``dispatch``), PPO's GAE and value loss (``ppo``), and a step's tensors
with their micro-batch planner (``batch``). No I/O, no models."""

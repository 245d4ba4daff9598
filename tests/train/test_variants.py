"""The algorithm variants as the trainer runs them: ``algo.loss``, the advantage estimators, the entropy
bonus, the reward controls and ProRL's reference reset, through ``policy_update`` and ``r1zero train``."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1zero.algo.dispatch import LOSSES, get_loss
from r1zero.algo.losses import entropy_bonus
from r1zero.algo.shaping import random_rewards
from r1zero.train import cli
from r1zero.train.checkpoint import latest_checkpoint, load_trainer_state
from r1zero.train.config import AlgoConfig, apply_overrides
from r1zero.train.learner import loss_options, policy_update
from r1zero.train.presets import get_preset
from r1zero.train.recipe import train
from r1zero.train.rollouts import RewardControl, rollout_seed
from r1zero.verifiers import Verdict

from .test_learner_shared import _batch, _model, _plain

HERE = Path(__file__).parent
torch.set_num_threads(1)


def _plain_update(model, batch, algo: AlgoConfig) -> tuple[float, dict[str, torch.Tensor]]:
    """The reference: ``algo``'s loss (and entropy bonus) over one plain forward of the whole batch."""
    logp_all = torch.log_softmax(_plain(model, batch, "logits").float(), dim=-1)  # [B, T, V]
    logp = logp_all.gather(-1, batch.input_ids[:, batch.prompt_width :, None]).squeeze(-1)  # [B, T]
    common = {
        "aggregation": algo.loss_agg,
        "max_len": 8,
        "num_sequences": batch.input_ids.shape[0],
        "num_tokens": batch.loss_mask.sum().item(),
    }
    loss, _ = get_loss(algo.loss)(
        logp, logp.detach(), batch.advantages, batch.loss_mask, beta=0.0, **common, **loss_options(algo)
    )
    if algo.entropy_coef:
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # [B, T]
        loss = loss + entropy_bonus(entropy, batch.loss_mask, algo.entropy_coef, **common)
    model.zero_grad()
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _learner_update(model, batch, algo: AlgoConfig) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    model.zero_grad()
    stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, algo, max_len=8)
    return stats, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_loss_through_the_learner_gives_the_gradient_of_its_formula(loss):
    """policy_update with ``algo.loss`` = the loss function on one plain forward (same value and gradient),
    with the shared-prompt pass and micro-batches (whole-batch selections: one micro-batch for Clip-Cov
    and KL-Cov, which pick tokens per call)."""
    micro = 9 if loss in ("clip_cov", "kl_cov") else 2
    agg = "grpo" if loss == "gspo" else "dapo"
    algo = AlgoConfig(loss=loss, loss_agg=agg, micro_batch_size=micro, clip_cov_ratio=0.2, kl_cov_ratio=0.2)
    model = _model("qwen2")
    batch = _batch()
    expected_loss, expected = _plain_update(model, batch, algo)
    stats, got = _learner_update(model, batch, algo)
    assert stats["loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-6), name
    own = {"gspo": "seq_clip", "cispo": "weight_clip", "sapo": "gate_weight", "dual_clip": "dual_clip",
           "clip_cov": "cov_clip", "kl_cov": "kl_cov"}  # fmt: skip
    if loss in own:
        assert own[loss] in stats


def test_entropy_bonus_is_back_propagated():
    """With ``entropy_coef`` the gradient is the loss's plus the bonus's (the entropy keeps its graph);
    a bonus computed without gradient would leave the plain GRPO gradient, which this also checks it is not."""
    model = _model("qwen2")
    batch = _batch()
    algo = AlgoConfig(loss_agg="dapo", micro_batch_size=2, entropy_coef=0.5)
    expected_loss, expected = _plain_update(model, batch, algo)
    _, without = _plain_update(model, batch, AlgoConfig(loss_agg="dapo"))
    stats, got = _learner_update(model, batch, algo)
    assert stats["loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert stats["entropy_bonus"] < 0
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-6), name
    assert any(not torch.allclose(expected[n], without[n], atol=1e-4) for n in expected)


def test_reward_controls():
    verdicts = [
        Verdict(1.0, True, True, "correct"),
        Verdict(0.0, False, True, "wrong"),
        Verdict(0.0, True, False, "bad_format"),
    ] * 20  # fmt: skip
    fmt = RewardControl("format_only", correct=2.0, wrong=-1.0).rewards(verdicts, seed=0, index=0)
    assert fmt[:3].tolist() == [2.0, 2.0, -1.0]
    coin = RewardControl("random", p=0.5)
    a, b = coin.rewards(verdicts, seed=3, index=1), coin.rewards(verdicts, seed=3, index=1)
    assert torch.equal(a, b) and 10 < a.sum().item() < 50  # seeded, and no function of the verdicts
    assert not torch.equal(a, coin.rewards(verdicts, seed=3, index=2))
    assert RewardControl("random", p=0.0).rewards(verdicts, 0, 0).sum().item() == 0.0
    with pytest.raises(ValueError, match="random or format_only"):
        RewardControl("lucky").rewards(verdicts, 0, 0)


def _config(model_dir: Path, out: Path, name: str, *extra: str):
    return apply_overrides(
        get_preset("smoke"),
        [
            "--model.name", str(model_dir), "--data.template", "tiny-demo",
            "--data.verifier", str(HERE / "digit_verifier.py"), "--reward.workers", "0",
            "--run.out_dir", str(out), "--run.name", name, "--run.threads", "1", *extra,
        ],
    )  # fmt: skip


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (("--algo.loss", "gspo", "--algo.eps_low", "3e-4", "--algo.eps_high", "4e-4"), "policy/seq_clip"),
        (("--algo.loss", "cispo", "--algo.eps_high", "4"), "policy/weight_clip"),
        (("--algo.loss", "sapo"), "policy/gate_weight"),
        (("--algo.advantage", "rloo"), "policy/entropy"),
        (("--algo.advantage", "reinforce_pp"), "policy/entropy"),
        (("--algo.entropy_coef", "0.01"), "loss/entropy_bonus"),
        (("--algo.overlong_filter", "true"), "loss/masked_truncated"),
    ],
)
def test_train_runs_each_variant_and_logs_its_metric(tiny_model_dir, tmp_path, extra, key):
    result = train(_config(tiny_model_dir, tmp_path, "v", "--run.steps", "2", *extra))
    rows = _metrics(result.run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(key in r for r in rows[1:]), key


def test_random_reward_control_trains_on_coin_flips_and_records_the_verifier(tiny_model_dir, tmp_path):
    result = train(_config(tiny_model_dir, tmp_path, "coin", "--reward.verifier", "random",
                           "--reward.random_p", "1.0", "--run.steps", "2"))  # fmt: skip
    rows = _metrics(result.run_dir)[1:]
    assert all(r["train/reward"] == 1.0 for r in rows)  # every coin lands: reward 1, whatever the answer
    assert all(r["groups/zero_variance"] == 1.0 for r in rows)
    # what the verifier would have paid (correct and formatted under the strict rule): not the coin's
    assert all(0.0 <= r["train/reward/verifier"] <= r["train/accuracy"] for r in rows)
    assert any(r["train/reward/verifier"] < 1.0 for r in rows)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["reward"]["verifier"] == "random"


def test_random_reward_control_takes_the_step0_accuracy(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"reward\.random_p"):
        _config(tiny_model_dir, tmp_path, "x", "--reward.verifier", "random", "--run.eval_every", "0")
    fixed = ("--algo.dynamic_sampling", "false")  # one sampling round: the coins' seed is round 0's
    result = train(
        _config(tiny_model_dir, tmp_path, "p0", "--reward.verifier", "random", "--run.steps", "1", *fixed)
    )
    p = result.step0["heldout/accuracy"]
    assert 0.0 < p < 1.0
    # step 1's coins, recomputed: Bernoulli(p) per completion, seeded by the step's sampling seed and group
    seed = rollout_seed(0, 1, 0, 0)
    coins = torch.cat([random_rewards((4,), p, seed=seed, step=j) for j in range(2)])  # smoke: 2 x 4
    assert _metrics(result.run_dir)[1]["train/reward"] == pytest.approx(coins.mean().item())


def test_reference_reset_resets_the_reference_and_adam_and_resumes(tiny_model_dir, tmp_path):
    args = ("--algo.beta", "0.1", "--algo.ref_reset_every", "3", "--run.save_every", "3")
    train(_config(tiny_model_dir, tmp_path, "full", *args, "--run.steps", "4"))
    train(_config(tiny_model_dir, tmp_path, "cut", *args, "--run.steps", "3"))
    rows = _metrics(tmp_path / "full")
    assert [r.get("ref/reset", 0.0) for r in rows[1:]] == [0.0, 0.0, 1.0, 0.0]
    # step 3 measures KL to the base (the policy moved at step 2); step 4 to the step-3 policy it starts from
    assert rows[2]["policy/grad_norm"] > 0 and rows[3]["policy/kl"] > 0 and rows[4]["policy/kl"] == 0.0
    step3 = latest_checkpoint(tmp_path / "cut")
    assert step3 is not None and step3.step == 3
    policy, reference = (
        load_file(step3.path / "model.safetensors"),
        load_file(step3.path / "reference" / "model.safetensors"),
    )
    assert policy.keys() == reference.keys() and all(torch.equal(policy[k], reference[k]) for k in policy)
    assert load_trainer_state(step3)["optimizer"]["state"] == {}  # Adam's moments cleared with the reset
    # resuming from the reset checkpoint continues exactly like the uninterrupted run
    config, resume = cli.build_config(["--resume", str(tmp_path / "cut"), "--run.steps", "4"])
    train(config, resume)
    drop = ("time/", "perf/")  # wall-clock keys; step 3 differs only in the cut run's final held-out eval
    a, b = _metrics(tmp_path / "full")[4], _metrics(tmp_path / "cut")[4]
    assert {k: v for k, v in a.items() if not k.startswith(drop)} == {
        k: v for k, v in b.items() if not k.startswith(drop)
    }
    final = "checkpoints/step_000004/model.safetensors"
    assert (tmp_path / "full" / final).read_bytes() == (tmp_path / "cut" / final).read_bytes()


@pytest.mark.parametrize("name", ["rloo", "reinforce_pp", "reinforce_pp_baseline"])
def test_batch_estimators_take_their_statistics_over_every_rank(monkeypatch, name):
    """On rank 1 of 2, the advantages are rank 1's rows of the estimator over both ranks' rows."""
    from types import SimpleNamespace

    from r1zero.algo.dispatch import compute_advantages
    from r1zero.train import recipe
    from r1zero.train.distributed import DistInfo

    g = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (4, 4), generator=g).float()  # [N, G], both ranks
    lengths = torch.randint(1, 30, (4, 4), generator=g).float()
    mine = slice(2, 4)  # rank 1's two groups
    gathered = iter([rewards.tolist(), lengths.tolist()])
    monkeypatch.setattr(recipe, "all_gather_list", lambda items, dist_info: next(gathered))
    s = SimpleNamespace(config=SimpleNamespace(algo=AlgoConfig(advantage=name)), dist=DistInfo(1, 2, 1))
    got = recipe._estimator_advantages(s, rewards[mine], lengths[mine])
    assert torch.equal(got, compute_advantages(name, rewards, lengths)[mine])
    if name != "rloo":  # batch statistics: rank 1's rows alone would give other numbers
        assert not torch.allclose(got, compute_advantages(name, rewards[mine], lengths[mine]))

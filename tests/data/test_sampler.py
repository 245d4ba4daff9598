import json
from collections import Counter

import pytest

from r1zero.data import Problem, PromptSampler


def problems(n=10):
    return [Problem(f"p{i}", f"q{i}", str(i), "integer") for i in range(n)]


def ids(batch):
    return [p.id for p in batch]


def test_deterministic_by_seed_and_different_across_seeds():
    def run(seed):
        return [ids(b) for b in _batches(PromptSampler(problems(), 4, seed=seed), 6)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def _batches(sampler, k):
    return [sampler.next_batch() for _ in range(k)]


def test_every_epoch_is_a_permutation_and_epochs_are_reshuffled():
    sampler = PromptSampler(problems(10), 5, seed=0)
    epochs = [[i for b in _batches(sampler, 2) for i in ids(b)] for _ in range(3)]
    for order in epochs:
        assert sorted(order) == sorted(ids(problems(10)))
    assert epochs[0] != epochs[1] != epochs[2]
    assert sampler.epoch == 2 and sampler.position == 10


def test_batches_cross_epoch_boundaries_and_stay_full():
    sampler = PromptSampler(problems(7), 3, seed=0)
    seen = [ids(b) for b in _batches(sampler, 7)]  # 21 draws = exactly 3 epochs
    assert all(len(b) == 3 for b in seen)
    assert Counter(i for b in seen for i in b) == {f"p{i}": 3 for i in range(7)}


def test_no_shuffle_keeps_file_order():
    sampler = PromptSampler(problems(5), 2, seed=3, shuffle=False)
    assert [ids(b) for b in _batches(sampler, 3)] == [["p0", "p1"], ["p2", "p3"], ["p4", "p0"]]


@pytest.mark.parametrize("stop_after", [0, 1, 2, 3, 4, 7])
def test_saved_and_restored_state_continues_exactly(stop_after):
    # 10 problems, batches of 4: batch 3 crosses the first epoch boundary, batch 5 the second.
    reference = PromptSampler(problems(), 4, seed=11)
    expected = [ids(b) for b in _batches(reference, 10)]
    first = PromptSampler(problems(), 4, seed=11)
    _batches(first, stop_after)
    state = json.loads(json.dumps(first.state_dict()))  # survives a checkpoint file
    resumed = PromptSampler(problems(), 4, seed=11)
    resumed.load_state_dict(state)
    assert [ids(b) for b in _batches(resumed, 10 - stop_after)] == expected[stop_after:]
    assert resumed.state_dict() == reference.state_dict()


def test_restore_refuses_other_data_or_seed():
    state = PromptSampler(problems(), 4, seed=0).state_dict()
    with pytest.raises(ValueError, match="fingerprint"):
        PromptSampler(problems(10)[::-1], 4, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="seed is 0 in the saved state and 1 here"):
        PromptSampler(problems(), 4, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        PromptSampler(problems(), 0)
    with pytest.raises(ValueError, match="at least one problem"):
        PromptSampler([], 2)

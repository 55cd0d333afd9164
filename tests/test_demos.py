"""Demonstrations: the oracle's, and a sloppy demonstrator's that gives up, both scored by the real environment."""

import pytest

from agentic.parsing import parse_action
from agentic.training.demos import GIVE_UP, demonstrations
from agentic.training.tiny_model import task_corpus, train_tokenizer

SEEDS = range(10_000, 10_060)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(task_corpus(["Arithmetic"], range(10_000, 10_020)), vocab_size=300)


def test_without_sloppiness_every_demonstration_is_the_oracle_and_succeeds(tokenizer):
    demos = demonstrations("Arithmetic", SEEDS, tokenizer)
    assert [t.seed for t in demos] == list(SEEDS)
    assert all(t.success for t in demos)
    assert all([turn.event for turn in t.turns] == ["tool", "finish"] for t in demos)


def test_a_sloppy_demonstration_gives_up_at_once_and_fails(tokenizer):
    oracle = demonstrations("Arithmetic", SEEDS, tokenizer)
    demos = demonstrations("Arithmetic", SEEDS, tokenizer, sloppy_rate=0.5, seed=3)
    sloppy = [i for i, t in enumerate(demos) if len(t.turns) == 1]
    assert 15 <= len(sloppy) <= 45
    for i in sloppy:
        (turn,) = demos[i].turns
        assert turn.action == GIVE_UP and parse_action(turn.action).kind.value == "finish"
        assert demos[i].terminated and not demos[i].success and demos[i].seed == oracle[i].seed
    assert all(demos[i].token_ids == oracle[i].token_ids for i in range(len(demos)) if i not in sloppy)


def test_the_sloppy_episodes_are_drawn_from_the_seed(tokenizer):
    def picks(seed):
        return [len(t.turns) for t in demonstrations("Arithmetic", SEEDS, tokenizer, sloppy_rate=0.3, seed=seed)]

    assert picks(1) == picks(1) != picks(2)


def test_a_rate_outside_zero_to_one_is_refused(tokenizer):
    with pytest.raises(ValueError, match="sloppy_rate must lie in"):
        demonstrations("Arithmetic", SEEDS, tokenizer, sloppy_rate=1.5)

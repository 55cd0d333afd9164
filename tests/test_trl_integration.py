"""`agentic.integrations.trl`: TRL's GRPOTrainer trained through `TaskRollout` on the project's engine.

The model is a one-layer tiny GPT-NeoX on `Arithmetic`, untrained: its actions are mostly invalid, so episodes
carry plenty of environment tokens (``<sys>`` feedback). Its returns are then often all the same within a group,
which gives GRPO no advantage to learn from, so the training test adds a second reward that always differs.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from agentic.env import AgenticEnvironment
from agentic.integrations.trl import TaskRollout, environment_reward
from agentic.policy import encode
from agentic.training.tiny_model import build_tiny_model

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:You are using 'rollout_func'"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

SEEDS = range(1_000_000, 1_000_016)


@pytest.fixture(scope="module")
def model_dir(small_arithmetic_model) -> str:
    return small_arithmetic_model


def brevity(completion_ids: list[list[int]], **_) -> list[float]:
    """A reward that differs within every group (completions differ in length): nonzero advantages that do not
    depend on an untrained model happening to earn different returns."""
    return [-len(ids) / 1000 for ids in completion_ids]


def make_trainer(model_dir: str, out_dir, rollout_func, reward_funcs=environment_reward, **config) -> GRPOTrainer:
    settings = dict(
        output_dir=str(out_dir), max_steps=2, per_device_train_batch_size=8, num_generations=4, learning_rate=1e-2,
        mask_truncated_completions=True, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    return GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        reward_funcs=reward_funcs,
        train_dataset=TaskRollout("Arithmetic").dataset(SEEDS),
        rollout_func=rollout_func,
        args=GRPOConfig(**settings | config),
    )


@pytest.fixture(scope="module")
def trainer(model_dir, tmp_path_factory) -> GRPOTrainer:
    """A trainer that is never trained: for calling the rollout directly. Samples at temperature 0.7."""
    return make_trainer(model_dir, tmp_path_factory.mktemp("idle"), TaskRollout("Arithmetic"), temperature=0.7)


class LossGradients:
    """For every backward pass: the gradient's norm on each position's final hidden state, with the inputs.

    With TRL's fused LM head the logits are never materialised, but the final hidden state at position t feeds
    only the prediction of token t + 1, so a zero gradient there means token t + 1 carried no loss. TRL labels
    exactly the completion's real tokens (not its padding), which tells where each completion lies.
    """

    def __init__(self, model):
        self.batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (input_ids, labels, norms)
        self.inputs = None
        model.register_forward_pre_hook(self.remember_inputs, with_kwargs=True)
        model.gpt_neox.final_layer_norm.register_forward_hook(self.watch_hidden_states)

    def remember_inputs(self, module, args, kwargs):
        self.inputs = (kwargs["input_ids"], kwargs.get("labels"))

    def watch_hidden_states(self, module, args, output):
        if output.requires_grad:
            inputs = self.inputs
            output.register_hook(lambda grad: self.batches.append((*inputs, grad.norm(dim=-1))))


def agent_positions(outputs: list[dict]) -> dict[tuple[int, ...], set[int]]:
    """Each completion the rollout gave TRL, mapped to the positions of its agent tokens, read off the turns."""
    found = {}
    for output in outputs:
        for completion, trajectory in zip(output["completion_ids"], output["trajectory"]):
            start = trajectory.turns[0].start
            found[tuple(completion)] = {i - start for turn in trajectory.turns for i in range(turn.start, turn.end)}
    return found


def test_two_grpo_steps_train_on_agent_tokens_only_and_no_episode_counts_as_truncated(model_dir, tmp_path):
    rollout = TaskRollout("Arithmetic")
    outputs = []

    def recording_rollout(prompts, trainer):
        outputs.append(rollout(prompts, trainer))
        return outputs[-1]

    trainer = make_trainer(model_dir, tmp_path, recording_rollout, reward_funcs=[environment_reward, brevity])
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    gradients = LossGradients(trainer.model)
    trainer.train()

    unchanged = [name for name, p in trainer.model.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    steps = [row for row in trainer.state.log_history if "loss" in row]
    assert len(steps) == 2 and all(row["completions/clipped_ratio"] == 0 for row in steps)
    for row, output in zip(steps, outputs):
        returns = [sum(t.rewards) for t in output["trajectory"]]
        assert row["rewards/environment_reward/mean"] == pytest.approx(sum(returns) / len(returns), abs=1e-6)

    agents = agent_positions(outputs)
    environment_norms, agent_norms = [], []
    assert len(gradients.batches) == 2, "one backward pass per step"
    for input_ids, labels, norms in gradients.batches:
        for ids, row_labels, row_norms in zip(input_ids, labels, norms):
            positions = (row_labels != -100).nonzero().squeeze(1).tolist()
            mine = agents[tuple(ids[positions].tolist())]
            for j, position in enumerate(positions):  # the state at position - 1 predicts the token at position
                (agent_norms if j in mine else environment_norms).append(row_norms[position - 1].item())
    assert len(environment_norms) > 100 and max(environment_norms) == 0.0, "environment tokens carried loss"
    assert sum(agent_norms) > 0
    assert steps[0]["success"] == sum(t.success for t in outputs[0]["trajectory"]) / 8


def test_each_prompt_key_plays_its_seed_and_the_completion_is_the_rest_of_the_episode(trainer):
    rollout = TaskRollout("Arithmetic")
    assert rollout.dataset([5, 7])["prompt"] == ["Arithmetic:5", "Arithmetic:7"]
    tokenizer = trainer.processing_class
    output = rollout(["Arithmetic:7", "Arithmetic:5", "Arithmetic:7"], trainer)
    assert output["prompt_ids"][0] == output["prompt_ids"][2] != output["prompt_ids"][1]
    for seed, prompt_ids, completion_ids, env_mask, trajectory in zip(
        [7, 5, 7], output["prompt_ids"], output["completion_ids"], output["env_mask"], output["trajectory"]
    ):
        observation, _ = AgenticEnvironment("Arithmetic").reset(seed=seed)
        assert trajectory.seed == seed and prompt_ids == encode(tokenizer, observation)
        assert prompt_ids + completion_ids == trajectory.token_ids + [tokenizer.eos_token_id]
        assert tokenizer.decode(completion_ids[:-1]) == "".join(turn.action + turn.reply for turn in trajectory.turns)
        assert sum(env_mask) == sum(turn.end - turn.start for turn in trajectory.turns) > 0
        assert env_mask[-1] == 0 and len(env_mask) == len(completion_ids) > sum(env_mask)


def test_sampling_logprobs_are_the_models_at_the_trainers_temperature_and_nan_off_the_agent(trainer):
    output = TaskRollout("Arithmetic")(["Arithmetic:3"] * 4, trainer)
    for prompt_ids, completion_ids, env_mask, logprobs in zip(
        output["prompt_ids"], output["completion_ids"], output["env_mask"], output["logprobs"]
    ):
        with torch.no_grad():
            logits = trainer.model(torch.tensor([prompt_ids + completion_ids])).logits[0, len(prompt_ids) - 1 : -1]
        expected = (logits / 0.7).log_softmax(-1).gather(1, torch.tensor(completion_ids)[:, None]).squeeze(1)
        for agent, recorded, recomputed in zip(env_mask, logprobs, expected.tolist()):
            assert recorded == pytest.approx(recomputed, abs=1e-4) if agent else math.isnan(recorded)


def test_calls_sample_afresh_yet_reproducibly(trainer):
    keys = ["Arithmetic:3"] * 2
    first, twin = TaskRollout("Arithmetic"), TaskRollout("Arithmetic")
    once, twice, again = first(keys, trainer), first(keys, trainer), twin(keys, trainer)
    assert once["completion_ids"] == again["completion_ids"] != twice["completion_ids"]


@pytest.mark.parametrize("training", [True, False])
def test_the_rollout_leaves_the_model_in_the_mode_it_found(trainer, training):
    trainer.model.train(training)
    TaskRollout("Arithmetic")(["Arithmetic:1"], trainer)
    assert trainer.model.training is training


def test_an_episode_that_fills_the_context_gets_no_end_marker(tmp_path):
    short = build_tiny_model(["Arithmetic"], tmp_path / "short", seeds=range(20), max_position_embeddings=96)
    rollout = TaskRollout("Arithmetic")
    output = rollout([rollout.key(seed) for seed in range(4)], make_trainer(str(short), tmp_path, rollout))
    for completion_ids, trajectory in zip(output["completion_ids"], output["trajectory"]):
        assert trajectory.truncated and "context of 96 tokens is full" in trajectory.truncation_reason
        assert completion_ids == trajectory.token_ids[trajectory.turns[0].start :]


def test_foreign_prompts_and_sampling_the_engine_lacks_are_refused(model_dir, trainer, tmp_path):
    rollout = TaskRollout("Arithmetic")
    for prompt in ("What is 2 + 2?", "TwoHop:3", "Arithmetic:three"):
        with pytest.raises(ValueError, match=re.escape(f"prompt '{prompt}' is not an episode key of task Arithmetic;")):
            rollout([prompt], trainer)
    top_k = make_trainer(model_dir, tmp_path, rollout, top_k=5, repetition_penalty=1.1)
    with pytest.raises(ValueError, match="temperature and top_p only; unset top_k=5, repetition_penalty=1.1$"):
        rollout(["Arithmetic:1"], top_k)

"""The corpus pipeline's PPO stage: the agentic training loop on one-turn episodes of a reward-model task."""

import json
import math
from dataclasses import replace

import pytest
import torch
from toy_yes_no import YesOrNo, warmed_up_policy
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

import agentic.training.rl
from agentic.cli import main
from agentic.env import AgenticEnvironment
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.run_dir import read_jsonl, write_jsonl
from agentic.sampling import Sampling
from agentic.training.corpus import ppo as corpus_ppo_module
from agentic.training.corpus.options import corpus_ppo_options
from agentic.training.corpus.ppo import RewardModelTask, ppo_stage
from agentic.training.corpus.reward import RewardScorer
from agentic.training.ppo import PPO, RewardNormalizer, TrainingDiverged
from agentic.training.ppo.value import reward_model_critic
from agentic.training.rl import sampling_policy
from agentic.training.rl_config import PPOOptions
from agentic.training.tiny_model import tiny_config, train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [
    "Once upon a time, a little cat sat in the sun.",
    "Tom had a red ball.",
    "The sky was blue and",
    "Mia and her dog ran to the park.",
] * 3
QUICK = dict(iterations=2, episodes=6, max_new_tokens=6, epochs=1, minibatch_size=3, progress=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny SFT policy and a tiny one-label reward model, saved as the pipeline saves them."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = train_tokenizer(PROMPTS + ["The end. They were happy and played all day."], vocab_size=300)
    torch.manual_seed(0)
    config = tiny_config(tokenizer, hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    GPTNeoXForCausalLM(config).save_pretrained(root / "sft")
    tokenizer.save_pretrained(root / "sft")
    config.num_labels = 1
    GPTNeoXForSequenceClassification(config).save_pretrained(root / "rm")
    tokenizer.save_pretrained(root / "rm")
    return root


@pytest.fixture
def run_dir(models, tmp_path):
    """A corpus run directory with what the PPO stage reads: train prompts, the SFT model, the reward stage's record."""
    run = tmp_path / "run"
    write_jsonl(
        [{"prompt": p, "reference": " The end.", "group": str(i)} for i, p in enumerate(PROMPTS)],
        run / "prepare" / "train.jsonl",
    )
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "model").symlink_to(models / "sft", target_is_directory=True)
    (run / "reward").mkdir()
    (run / "reward" / "summary.json").write_text(json.dumps({"reward_model": str(models / "rm")}))
    return run


@pytest.fixture
def batches(monkeypatch):
    """Every batch the training loop collates, in order."""
    recorded = []
    collate = agentic.training.rl.collate

    def recording_collate(*args, **kwargs):
        recorded.append(collate(*args, **kwargs))
        return recorded[-1]

    monkeypatch.setattr(agentic.training.rl, "collate", recording_collate)
    return recorded


def read_metrics(out_dir):
    return [row for row in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines()) if "score" in row]


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_the_ppo_stage_is_the_agentic_loop_on_one_turn_reward_model_episodes(models, run_dir, batches, lora_rank):
    summary = ppo_stage(run_dir, corpus_ppo_options(run_dir, **QUICK, lora_rank=lora_rank))

    assert len(batches) == 2 and summary["iterations"] == 2 and summary["prompts"] == len(PROMPTS)
    first = batches[0]
    assert first.turn_mask.shape == (6, 1) and first.turn_mask.all(), "one turn per episode"
    tokenizer = AutoTokenizer.from_pretrained(models / "sft")
    lengths = first.attention_mask.sum(1)
    prompts, completions, cut = [], [], []
    for row in range(6):
        agent = first.agent_mask[row].nonzero().squeeze(1)
        start = int(first.decision_positions[row, 0]) + 1
        assert agent.tolist() == list(range(start, int(lengths[row]))), "the completion ends the episode"
        ids = first.input_ids[row, start : int(lengths[row])].tolist()
        assert len(ids) == 6 or ids[-1] == tokenizer.eos_token_id, "a completion stops at eos or the length limit"
        prompts.append(tokenizer.decode(first.input_ids[row, :start]))
        completions.append(tokenizer.decode(ids))
        cut.append(ids[-1] != tokenizer.eos_token_id)
    assert set(prompts) <= set(PROMPTS), "instances are train prompts"
    normalised = RewardNormalizer("running", 5.0)(RewardScorer(models / "rm").score(prompts, completions))
    expected = [reward - 1.0 * missing for reward, missing in zip(normalised, cut)]
    assert first.turn_rewards[:, 0].tolist() == pytest.approx(expected, abs=1e-4), (
        "terminal reward = the reward model's score, normalised with running statistics and clipped, less the "
        "missing-EOS penalty (1 by default) for a completion cut at the length limit"
    )

    ppo = run_dir / "ppo"
    metrics = read_metrics(ppo)
    assert [m["step"] for m in metrics] == [1, 2]
    for name in ("score", "reward", "kl", "entropy", "clip_fraction", "value_loss"):
        assert all(math.isfinite(m[name]) for m in metrics), name
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-4), "the policy starts as its KL reference"
    assert (ppo / "plots" / "training.png").is_file() and (ppo / "summary.json").is_file()
    saved = Policy.from_pretrained(ppo / "model").model
    assert (ppo / "model" / "adapter_config.json").is_file() == bool(lora_rank), "LoRA saves an adapter over SFT"
    saved = saved.merge_and_unload() if lora_rank else saved
    sft = AutoModelForCausalLM.from_pretrained(models / "sft")
    assert any(not torch.equal(a, b) for a, b in zip(saved.state_dict().values(), sft.state_dict().values())), (
        "PPO moved the weights"
    )


class Length:
    """A reward model stand-in: a completion's length in characters."""

    def score(self, prompts, completions):
        return [float(len(c)) for c in completions]


def test_a_free_text_episode_is_the_whole_reply_and_a_sentinel_does_not_end_it():
    """The toy policy answers ``<finish>yes</finish>`` and the like. In a free-text task its whole reply, up to eos or
    the length limit, is the answer; the agentic stop (at the first complete action) does not apply."""
    torch.manual_seed(0)
    policy = warmed_up_policy()
    task = RewardModelTask([YesOrNo().prompt({})], Length())
    sampling = Sampling(max_new_tokens=12, seed=0)
    agentic_stop = rollout(policy, task, range(16), sampling)
    assert all(t.turns[0].action.endswith("</finish>") for t in agentic_stop), "an agent's policy stops at the sentinel"

    episodes = rollout(sampling_policy(policy, task), task, range(16), sampling)
    for episode in episodes:
        (turn,) = episode.turns
        assert episode.terminated and turn.event == "finish" and turn.reply == ""
        assert turn.end - turn.start == 12 or episode.token_ids[-1] == policy.eos_id
        assert episode.score == len(turn.action), "the whole reply is the answer the reward model scores"
    assert any("</finish>" in t.turns[0].action and not t.turns[0].action.endswith("</finish>") for t in episodes)

    env = AgenticEnvironment(task)
    env.reset(seed=0)
    *_, terminated, _, info = env.step("Not an action <ask>at all?</ask> and more")
    assert terminated and info["action"].content == "Not an action <ask>at all?</ask> and more"


def test_rewards_are_normalised_by_running_or_batch_statistics_then_clipped():
    running = RewardNormalizer("running", clip=5.0)
    assert running([0.0, 2.0]) == pytest.approx([-1.0, 1.0])
    assert running([4.0]) == pytest.approx([2 / math.sqrt(8 / 3)]), "pooled over 0, 2, 4: mean 2, variance 8/3"
    restored = RewardNormalizer("running", clip=5.0)
    restored.load_state_dict(running.state_dict())
    assert restored([1.0]) == running([1.0]), "the running statistics are part of a checkpoint"
    assert RewardNormalizer("batch")([1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        [x / math.sqrt(1.25) for x in (-1.5, -0.5, 0.5, 1.5)]
    )
    outlier = RewardNormalizer("batch", clip=5.0)([0.0] * 99 + [100.0])
    assert outlier[-1] == 5.0 and outlier[0] == pytest.approx(-1 / math.sqrt(99)), "mean 1, variance 99"
    assert RewardNormalizer("none", clip=5.0)([-7.0, 3.0, 6.0]) == [-5.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="finite"):
        running([1.0, math.nan])
    with pytest.raises(ValueError, match="reward_normalization must be one of none, batch, running"):
        PPOOptions(model="m", reward_normalization="zscore")


class NaNForTom:
    """A reward model stand-in: NaN for completions of the prompt about Tom (``everything``: for every one), else length."""

    everything = False

    def __init__(self, run_dir):
        pass

    def score(self, prompts, completions):
        return [
            math.nan if self.everything or p.startswith("Tom") else float(len(c)) for p, c in zip(prompts, completions)
        ]


def test_non_finite_rewards_are_left_out_and_an_update_of_nothing_else_is_refused(run_dir, monkeypatch):
    monkeypatch.setattr(corpus_ppo_module, "reward_scorer", NaNForTom)
    summary = ppo_stage(run_dir, corpus_ppo_options(run_dir, **QUICK | {"iterations": 3}))
    metrics = read_metrics(run_dir / "ppo")
    assert summary["nonfinite_rewards"] == sum(m["nonfinite_rewards"] for m in metrics) > 0
    assert all(m["episodes"] + m["nonfinite_rewards"] == 6 and math.isfinite(m["loss"]) for m in metrics)

    monkeypatch.setattr(NaNForTom, "everything", True)
    with pytest.raises(ValueError, match="every episode of the update has a non-finite reward"):
        ppo_stage(run_dir, corpus_ppo_options(run_dir, **QUICK))
    assert not (run_dir / "ppo" / "model").exists()


def test_repeated_non_finite_updates_stop_training_with_a_clear_message(run_dir, monkeypatch):
    original = agentic.training.rl.load_start_model

    def poisoned(name_or_path):
        """The policy's training forward passes (with gradients) give NaN logits; sampling and scoring stay finite."""
        model, tokenizer = original(name_or_path)

        def hook(module, args, output):
            if torch.is_grad_enabled():
                output.logits = output.logits + math.nan
            return output

        model.register_forward_hook(hook)
        return model, tokenizer

    monkeypatch.setattr(agentic.training.rl, "load_start_model", poisoned)
    with pytest.raises(TrainingDiverged, match="2 consecutive updates were non-finite"):
        ppo_stage(run_dir, corpus_ppo_options(run_dir, **QUICK | {"iterations": 4, "max_failures": 2}))
    report = json.loads((run_dir / "ppo" / "report.json").read_text())
    assert report["stop_reason"].startswith("diverged") and report["updates"] == 2
    assert not (run_dir / "ppo" / "model").exists(), "a diverged run saves no policy"


def test_a_rerun_replaces_the_stage_and_resume_continues_it(run_dir):
    options = corpus_ppo_options(run_dir, **QUICK | {"iterations": 1, "checkpoint_every": 1})
    ppo_stage(run_dir, options)
    ppo_stage(run_dir, options)
    assert [m["step"] for m in read_metrics(run_dir / "ppo")] == [1], "rerun from scratch, not appended"
    ppo_stage(run_dir, replace(options, iterations=2, resume=True))
    assert [m["step"] for m in read_metrics(run_dir / "ppo")] == [1, 2]


def stops_a_third_of_the_time(model_dir, out):
    """The model in ``model_dir`` made to end a response with eos with probability about 1/3 at every step: its final
    hidden state is a constant, and the output layer gives eos a logit log(150) above the 299 other tokens' 0."""
    model = GPTNeoXForCausalLM.from_pretrained(model_dir)
    eos = AutoTokenizer.from_pretrained(model_dir).eos_token_id
    with torch.no_grad():
        norm = model.gpt_neox.final_layer_norm
        norm.weight.zero_()
        norm.bias.zero_()
        norm.bias[0] = 1.0
        output = model.get_output_embeddings().weight
        output.zero_()
        output[eos, 0] = math.log(150)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return eos


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_a_response_cut_at_the_length_limit_loses_the_missing_eos_penalty_and_is_counted(
    models, run_dir, tmp_path, monkeypatch, penalty
):
    (run_dir / "sft" / "model").unlink()
    eos = stops_a_third_of_the_time(models / "sft", run_dir / "sft" / "model")
    monkeypatch.setattr(corpus_ppo_module, "reward_scorer", lambda run_dir: Length())
    options = QUICK | dict(iterations=1, episodes=12, max_new_tokens=3, samples_per_update=12)
    ppo_stage(
        run_dir,
        corpus_ppo_options(
            run_dir, **options, reward_normalization="none", reward_clip=0.0, missing_eos_penalty=penalty
        ),
    )
    samples = read_jsonl(run_dir / "ppo" / "samples" / "update-000001.jsonl")
    missing = [sample["token_ids"][sample["turns"][0]["end"] - 1] != eos for sample in samples]
    assert 0 < sum(missing) < len(samples), "some responses end with eos and some run to the length limit"
    for sample, cut in zip(samples, missing):
        (turn,) = sample["turns"]
        assert turn["end"] - turn["start"] == 3 or not cut
        assert turn["reward"] == pytest.approx(sample["score"] - penalty * cut), "the penalty only without eos"
    (metrics,) = read_metrics(run_dir / "ppo")
    assert metrics["missing_eos"] == pytest.approx(sum(missing) / len(samples))
    assert metrics["score"] == pytest.approx(sum(s["score"] for s in samples) / len(samples)), (
        "the score is unpenalised"
    )


def test_the_smollm_rlhf_recipe_sets_the_ppo_stage_and_each_flag_still_overrides_it(run_dir):
    (run_dir / "sft" / "summary.json").write_text("{}")
    quick = ["--ppo-iterations", "1", "--ppo-episodes", "2", "--ppo-minibatch-size", "2", "--ppo-max-new-tokens", "2"]
    command = ["corpus", "ppo", "--out-dir", str(run_dir), "--recipe", "smollm-rlhf", "--no-ppo-progress", *quick]
    assert main([*command, "--ppo-kl-coef", "0.1"]) == 0
    config = json.loads((run_dir / "ppo" / "config.json").read_text())
    recipe = {"learning_rate": 2e-6, "epochs": 4, "clip_range": 0.2, "kl_target": 0.0, "missing_eos_penalty": 1.0}
    assert {name: config[name] for name in recipe} == recipe
    assert config["kl_coef"] == 0.1, "a flag given explicitly wins over the recipe"
    assert main(["corpus", "ppo", "--out-dir", str(run_dir), "--no-ppo-progress", *quick]) == 0
    config = json.loads((run_dir / "ppo" / "config.json").read_text())
    assert (config["learning_rate"], config["epochs"], config["kl_target"]) == (0.0, 2, 6.0), "no recipe: the defaults"
    assert corpus_ppo_options(run_dir, recipe="smollm-rlhf", epochs=1).kl_coef == 0.02, "the Python API takes it too"


def test_a_critic_from_the_reward_model_starts_with_its_judgement_of_each_decision_point(models, run_dir, batches):
    ppo_stage(run_dir, corpus_ppo_options(run_dir, **QUICK | {"iterations": 1}, critic="reward-model"))
    config = json.loads((run_dir / "ppo" / "config.json").read_text())
    assert (config["critic"], config["critic_model"]) == ("reward-model", str(models / "rm")), "the run's reward model"
    (batch,) = batches
    reward_model = GPTNeoXForSequenceClassification.from_pretrained(models / "rm").eval()
    with torch.no_grad():
        judged = [
            reward_model(input_ids=batch.input_ids[row : row + 1, : int(batch.decision_positions[row, 0]) + 1])
            .logits[0, 0]
            .item()
            for row in range(len(batch))
        ]
    (metrics,) = read_metrics(run_dir / "ppo")
    assert metrics["value"] == pytest.approx(sum(judged) / len(judged), abs=1e-5), (
        "the first values are the reward model's scores of the contexts at the decision points"
    )


def test_a_critic_from_a_reward_model_of_another_vocabulary_is_refused(models):
    tokenizer = train_tokenizer(["another vocabulary entirely, for another model."], vocab_size=270)
    config = tiny_config(tokenizer, hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    config.num_labels = 1
    GPTNeoXForSequenceClassification(config).save_pretrained(models / "other-rm")
    policy = AutoModelForCausalLM.from_pretrained(models / "sft")
    with pytest.raises(ValueError, match="a critic from it must read the policy's tokens"):
        reward_model_critic(str(models / "other-rm"), policy)
    with pytest.raises(ValueError, match="critic reward-model needs critic_model"):
        PPO(PPOOptions(model="m", critic="reward-model"), policy, None)

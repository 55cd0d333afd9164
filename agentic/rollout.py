"""The batched token-in/token-out rollout engine, and scripted (e.g. oracle) demonstrations recorded the same way.

`rollout` runs many episodes of one task at once: each turn samples an action for every
live episode in one batch (`agentic.decoding.DecodingBatch`, whose KV cache persists across turns), decodes
each action's new tokens to text, steps the real `AgenticEnvironment` with it, encodes only
the reply to what the environment appended (``info["delta"]``) and appends those ids. The transcript
is never re-encoded, so the trajectory holds exactly the tokens the policy saw. What the prompt and
the replies are, raw text or chat messages, is the policy's `agentic.encoding` (the trajectory's ``mode``).

One caveat for tokenizers whose sentinels are several tokens: the last token of an action may
carry text past the closing tag. The environment discards that text from its own context, but
the trajectory keeps the token (it is what the model produced and will see next).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from agentic.constraint import episode_grammar, record_grammar
from agentic.encoding import EpisodeEncoding, episode_encoding
from agentic.env import AgenticEnvironment, oracle_action
from agentic.mixture import TaskMixture, episode_task
from agentic.policy import Policy
from agentic.sampling import Sampling
from agentic.task import Score, Task
from agentic.trajectory import Trajectory, TurnRecord


class Episode:
    """One environment episode recorded token by token: the prompt, then each action's tokens and the reply's.
    ``split``: the split the instance is drawn for (`agentic.task.SPLITS`).

    The environment's per-turn token budget counts each action's own tokens (the episode sets ``env.count_tokens``):
    re-encoding the action's text could count more, since a model may write a word in other tokens than the
    tokenizer's own split of it (a spelling tokenizer re-encodes a sampled `M|or` as `M|o|r`)."""

    def __init__(self, env: AgenticEnvironment, seed: int, encoding: EpisodeEncoding, split: str = "training"):
        self.env = env
        self.encoding = encoding
        self._action_tokens = 0
        env.count_tokens = lambda text: self._action_tokens
        env.reset(seed=seed, options={"split": split})
        prompt = encoding.prompt(env)
        self.trajectory = Trajectory(
            env.task.name,
            seed,
            env.instance,
            prompt.text,
            prompt.ids,
            [0] * len(prompt.ids),
            [math.nan] * len(prompt.ids),
            mode=encoding.mode,
        )
        self.done = False

    def step(self, action: str, action_ids: Sequence[int], logprobs: Sequence[float] | None = None) -> list[int]:
        """Play ``action`` (whose tokens are ``action_ids``); returns the reply's token ids. ``logprobs`` None: not sampled."""
        trajectory = self.trajectory
        self._action_tokens = len(action_ids)
        _, reward, terminated, truncated, info = self.env.step(self.encoding.environment_text(action, action_ids))
        reply = self.encoding.reply(info["delta"], action_ids)
        start = len(trajectory.token_ids)
        trajectory.token_ids += [*action_ids, *reply.ids]
        trajectory.loss_mask += [1] * len(action_ids) + [0] * len(reply.ids)
        sampled = list(logprobs) if logprobs is not None else [math.nan] * len(action_ids)
        trajectory.logprobs += sampled + [math.nan] * len(reply.ids)
        turn = TurnRecord(
            start, start + len(action_ids), action, info["action"].kind.value, info["event"], reward, reply.text
        )
        trajectory.turns.append(turn)
        if terminated or truncated:
            self._end(terminated, truncated, info["score"], info["truncation_reason"])
        return reply.ids

    def end_context_full(self, context_length: int) -> None:
        """End the episode because the model's context is full: truncated, scored as if no answer came."""
        score = self.env.task.score(self.env.instance, None, self.env.history)
        turns = self.trajectory.turns
        if turns:  # the score of no answer is the last turn's reward, as when the environment truncates
            turns[-1] = replace(turns[-1], reward=turns[-1].reward + score.total)
        self._end(False, True, score, f"the model's context of {context_length} tokens is full")

    def _end(self, terminated: bool, truncated: bool, score: Score, reason: str | None) -> None:
        trajectory = self.trajectory
        trajectory.terminated, trajectory.truncated, trajectory.truncation_reason = terminated, truncated, reason
        trajectory.success, trajectory.score, trajectory.breakdown = score.success, score.total, dict(score.breakdown)
        self.done = True


def rollout(
    policy: Policy,
    task: str | Task | TaskMixture,
    seeds: Sequence[int],
    sampling: Sampling = Sampling(),
    *,
    split: str = "training",
    progress: bool = False,
) -> list[Trajectory]:
    """One episode per seed, all sampled together; trajectories in the order of ``seeds``; instances of ``split``
    (RL rollouts train on "training"; evaluation passes "evaluation"); a `TaskMixture` plays each seed's own task.

    Each action is at most ``sampling.max_new_tokens`` tokens, no more than the task's
    ``budget.max_action_tokens`` and no more than the room left in the model's context. An
    episode with no room left ends truncated (the environment's last reply may run past the
    context). Results are deterministic for the same policy, task, seeds and sampling on the
    same device and batch. Under ``sampling.constrained`` each action is drawn from the grammar of the actions
    valid in its episode's state (`agentic.constraint.episode_grammar`), recorded with the trajectory.
    """
    episodes = [Episode(AgenticEnvironment(episode_task(task, seed)), seed, policy.encoding, split) for seed in seeds]
    batch = policy.decoding_batch([e.trajectory.token_ids for e in episodes], sampling)

    def grammar(i: int, limit: int) -> str:  # episode i's next action, under constrained sampling
        return episode_grammar(episodes[i].env, limit)

    context_length = policy.context_length or math.inf
    live = list(range(len(episodes)))
    with tqdm(total=len(episodes), desc="rollout", unit="episode", disable=not progress) as bar:
        while live:
            full = [i for i in live if batch.length(i) >= context_length]
            for i in full:
                episodes[i].end_context_full(policy.context_length)
            batch.release(full)
            live = [i for i in live if i not in full]
            limits = {i: min(context_length - batch.length(i), episodes[i].env.budget.max_action_tokens) for i in live}
            for i, generation in (batch.generate(limits, grammar) if live else {}).items():
                batch.extend(i, episodes[i].step(generation.text, generation.token_ids, generation.logprobs))
                if generation.grammar:
                    record_grammar(episodes[i].trajectory, generation.grammar)
            ended = [i for i in live if episodes[i].done]
            batch.release(ended)
            live = [i for i in live if i not in ended]
            bar.update(len(full) + len(ended))
    return [e.trajectory for e in episodes]


def oracle_trajectories(
    task: str | Task | TaskMixture,
    seeds: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    *,
    mode: str = "auto",
    split: str = "training",
    progress: bool = False,
) -> list[Trajectory]:
    """The task oracle's episodes through the real environment, one per seed: the SFT demonstrations (or, for
    ``split`` "evaluation", the reference of an evaluation)."""
    return scripted_trajectories(task, seeds, tokenizer, oracle_action, mode=mode, split=split, progress=progress)


def scripted_trajectories(
    task: str | Task | TaskMixture,
    seeds: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    act: Callable[[AgenticEnvironment], str],
    *,
    mode: str = "auto",
    split: str = "training",
    progress: bool = False,
) -> list[Trajectory]:
    """One episode per seed of ``split`` through the real environment, each action chosen by ``act(env)`` (a script,
    not a model); a `TaskMixture` plays each seed's own task.

    Episodes are encoded in ``mode`` (`agentic.encoding.episode_mode`: by default chat when the tokenizer
    has a chat template, as `Policy` does), so demonstrations match the episodes the model will play.
    Each action is encoded on its own, like every other segment, and in chat mode ends with the
    end-of-turn token, an agent token like the action's own; log-probs are NaN (nothing was sampled).
    """
    encoding = episode_encoding(tokenizer, mode)
    trajectories = []
    for seed in tqdm(seeds, desc="demonstrations", unit="episode", disable=not progress):
        episode = Episode(AgenticEnvironment(episode_task(task, seed)), seed, encoding, split)
        while not episode.done:
            action = encoding.action(act(episode.env))
            episode.step(action.text, action.ids)
        trajectories.append(episode.trajectory)
    return trajectories

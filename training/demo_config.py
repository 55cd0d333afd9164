"""The options of `agentic demo`, kept apart from the demo so that reading them (e.g. to build its flags)
imports nothing heavy, as the SFT and RL options are. Why the demo's settings are what they are: CHANGELOG.md."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from agentic.options import Options, option
from agentic.training.options import REPORT_TO_HELP
from agentic.training.rl_config import OPTIONS_BY_ALGORITHM, RLOptions
from agentic.training.sft_config import SFTOptions

ALL_TASKS = "all"
# The demo's KL coefficient (DEMO_RL) prices actions of about this many tokens: the short-action tasks it was set on
# (Arithmetic, MissingQuantity, TwoHop, MultiHopKnowledge) write oracle actions of 10-15 tokens on average.
DEMO_KL_ACTION_TOKENS = 16
# The demo's warm-up: half of 8000 demonstrations give up at once (1250 steps), so that greedy decoding after SFT
# mostly gives up too while sampling calls the tool often enough for RL to find out that it pays. At SFT's default
# peak learning rate (3e-3) whether the warm-up learnt to copy digits depended on the seed; at half of it, it did on
# each seed measured (README, "The demo").
DEMO_SFT = SFTOptions(sloppy_demos=0.5, n_demos=8000, epochs=5.0, learning_rate=1.5e-3)
# RL settings for a model of about a million parameters on 2 CPU cores (see `PPOOptions` / `GRPOOptions`).
DEMO_RL: dict[str, dict[str, Any]] = {
    "ppo": {
        "episodes": 32,
        "learning_rate": 3e-4,
        "value_learning_rate": 1e-3,
        "epochs": 2,
        "minibatch_size": 16,
        "kl_coef": 0.02,
    },
    "grpo": {"groups": 8, "group_size": 4, "learning_rate": 3e-4, "epochs": 2, "minibatch_size": 16, "kl_coef": 0.02},
}


@dataclass(frozen=True)
class DemoOptions(Options):
    """What `agentic demo` runs: SFT on sloppy demonstrations, then ``rl_iterations`` updates of ``algorithm``,
    evaluated on held-out seeds ``0 .. n_eval-1``. ``renamed_flags``: old flags that still work."""

    renamed_flags: ClassVar[dict[str, Any]] = {"--out": "out_dir"}

    task: str = option(
        "Arithmetic",
        "registered task (see `agentic tasks`), with options as NAME:key=value,... (e.g. ReasoningGym:dataset=chain_sum); "
        "several, comma-separated, or `all` (every installed task but BFCL's): the demo per task, and one policy on all of them",
    )
    out_dir: str = option("runs/demo", "run directory")
    n_eval: int = option(200, "held-out evaluation seeds 0 .. n_eval-1", bounds="positive")
    seed: int = option(0, "seed of every stage", bounds="non-negative")
    n_demos: int = option(DEMO_SFT.n_demos, "SFT demonstrations", bounds="positive")
    epochs: float = option(DEMO_SFT.epochs, "SFT epochs", bounds="positive")
    sft_learning_rate: float = option(
        DEMO_SFT.learning_rate, "SFT peak learning rate (cosine schedule)", bounds="positive"
    )
    sft_seconds: float = option(0.0, "stop SFT training after this long; 0: no limit", unit="s", bounds="non-negative")
    sloppy_demos: float = option(
        DEMO_SFT.sloppy_demos, "fraction of demonstrations that give up at once", bounds="fraction"
    )
    micro_batches: int = option(
        DEMO_SFT.micro_batches,
        "SFT: split each step's demonstrations into this many micro-batches of similar lengths (the same step over "
        "less padding; see `agentic sft --micro-batches`)",
        bounds="positive",
    )
    spell_names: bool = option(
        False,
        "the tiny model's tokenizer spells capitalised words one letter per token, so that names never seen in "
        "training are copied from tokens every name trains (MultiHopKnowledge; see build_tiny_model for the cost)",
    )
    algorithm: str = option("ppo", "the RL stage", choices=tuple(OPTIONS_BY_ALGORITHM))
    constrained: bool = option(
        False,
        "sample every action of the RL stage and of every evaluation from the grammar of the valid actions, so that "
        "no action is malformed and RL learns what to call, not how to write it (needs llguidance)",
    )
    rl_iterations: int = option(
        80, "RL updates (the RL stage's budget, whatever the machine's speed)", bounds="positive"
    )
    rl_instances: int = option(
        0,
        "task instances per RL update (PPO episodes, GRPO groups); 0: the demo's (32 episodes, 8 groups of 4)",
        bounds="non-negative",
    )
    rl_seconds: float = option(
        1800.0,
        "safety net: start no RL update after this long (the report then says it cut the run); 0: no limit",
        unit="s",
        bounds="non-negative",
    )
    max_new_tokens: int = option(
        0,
        "longest action sampled, in RL and in every evaluation; 0: 64, or more where a task's oracle writes longer "
        "actions (its longest in 200 training episodes, plus a quarter)",
        unit="tokens",
        bounds="non-negative",
    )
    rl_learning_rate: float = option(
        0.0,
        "the RL stage's policy learning rate; 0: the demo's ("
        + ", ".join(f"{name} {settings['learning_rate']:g}" for name, settings in DEMO_RL.items())
        + ")",
        bounds="non-negative",
    )
    rl_temperature: float = option(
        1.0,
        "sampling temperature of the RL stage's rollouts (the update trains the distribution at that temperature)",
        bounds="positive",
    )
    kl_coef: float = option(
        0.0,
        f"the RL stage's KL coefficient; 0: {DEMO_RL['ppo']['kl_coef']}, scaled by {DEMO_KL_ACTION_TOKENS} / the mean "
        f"oracle action's tokens where that is more than {DEMO_KL_ACTION_TOKENS} (a penalty summed over long actions "
        "would outweigh the score)",
        bounds="non-negative",
    )
    progress: bool = option(True, "show progress bars")
    report_to: str = option("tensorboard", REPORT_TO_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sft_options("model")  # check the stages' options now, not after minutes of work
        self.rl_options("model")

    def problems(self) -> list[str]:
        from agentic.registry import task_spec_problems

        return [] if self.task == ALL_TASKS else task_spec_problems(self.task)

    @property
    def task_specs(self) -> list[str]:
        """The tasks of ``task``: its comma-separated specs, or for `ALL_TASKS` every installed task but BFCL's
        (it needs its own package, and its categories are benchmarks, not tasks to learn here)."""
        # imported here: reading the options imports nothing heavy
        from agentic.registry import installed_task_names, split_task_specs

        if self.task == ALL_TASKS:
            return [name for name in installed_task_names() if not name.startswith("BFCL-")]
        return split_task_specs(self.task)

    def sft_options(self, model: str | Path, out_dir: str | Path = "runs/demo/sft") -> SFTOptions:
        return replace(
            DEMO_SFT,
            model=str(model),
            task=",".join(self.task_specs),
            out_dir=str(out_dir),
            n_demos=self.n_demos,
            epochs=self.epochs,
            learning_rate=self.sft_learning_rate,
            max_seconds=self.sft_seconds,
            sloppy_demos=self.sloppy_demos,
            micro_batches=self.micro_batches,
            seed=self.seed,
            progress=self.progress,
            report_to=self.report_to,
        )

    def rl_options(
        self, model: str | Path, out_dir: str | Path = "runs/demo/rl", max_new_tokens: int = 0, kl_coef: float = 0.0
    ) -> RLOptions:
        """The RL stage's options; ``max_new_tokens`` and ``kl_coef``, where not 0: the longest action it samples and its
        KL coefficient (`agentic.training.demo.action_settings`)."""
        settings = DEMO_RL[self.algorithm] | self._instances() | ({"kl_coef": kl_coef} if kl_coef else {})
        if self.rl_learning_rate:
            settings |= {"learning_rate": self.rl_learning_rate}
        return OPTIONS_BY_ALGORITHM[self.algorithm](
            model=str(model),
            max_new_tokens=max_new_tokens,
            temperature=self.rl_temperature,
            constrained=self.constrained,
            task=",".join(self.task_specs),
            out_dir=str(out_dir),
            iterations=self.rl_iterations,
            max_seconds=self.rl_seconds,
            n_eval=self.n_eval,
            eval_every=0,
            checkpoint_every=0,
            seed=self.seed,
            progress=self.progress,
            report_to=self.report_to,
            **settings,
        )

    def _instances(self) -> dict[str, int]:
        """The RL options that ``rl_instances`` sets, when it is not 0."""
        if not self.rl_instances:
            return {}
        return {"episodes" if self.algorithm == "ppo" else "groups": self.rl_instances}


def demo_kl_coef(algorithm: str, mean_action_tokens: float) -> float:
    """The demo's KL coefficient for ``algorithm`` on actions of ``mean_action_tokens`` on average: the per-token
    penalty is summed over each action, so the coefficient shrinks as actions grow past `DEMO_KL_ACTION_TOKENS`."""
    return DEMO_RL[algorithm]["kl_coef"] * min(1.0, DEMO_KL_ACTION_TOKENS / mean_action_tokens)

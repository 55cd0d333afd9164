"""The Python API takes objects as TRL's trainers do: `run_sft` and `run_rl` train a model object (in place) on a task
object the registry never saw, call callbacks on every step or update, stop when one asks, and record in config.json
what they started from, so that resuming such a run needs the objects again; `run_demo` takes a task object too."""

import json
import random
from dataclasses import replace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from PIL import Image
from safetensors.torch import load_file
from toy_yes_no import YesOrNo, warmed_up_policy
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from agentic import Budget, Score, Task, finish
from agentic.cli import main
from agentic.policy import Policy
from agentic.registry import make_task
from agentic.training.callbacks import RLCallback
from agentic.training.demo import run_demo
from agentic.training.demo_config import DemoOptions
from agentic.training.rl import run_rl
from agentic.training.rl_config import PPOOptions
from agentic.training.sft import run_sft
from agentic.training.sft_config import SFTOptions

pytestmark = pytest.mark.usefixtures("one_thread")


class EchoNumber(Task):
    """One turn: repeat the number of the question. Defined here and never registered."""

    name = "EchoNumber"
    description = "repeat the number"
    budget = Budget(max_turns=1, max_action_tokens=16)
    held_out = False

    def sample(self, rng: random.Random) -> dict[str, int]:
        return {"n": rng.randrange(100)}

    def prompt(self, instance: dict[str, int]) -> str:
        return f"Repeat {instance['n']}.\n"

    def score(self, instance, answer, history) -> Score:
        right = answer is not None and answer.strip() == str(instance["n"])
        return Score(float(right), {"right": float(right)}, success=right)

    def oracle(self, instance, history) -> str:
        return finish(str(instance["n"]))


class SayYes(YesOrNo):
    """`YesOrNo` under a name no registry knows."""

    name = "SayYes"


def class_path(value) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], model) -> set[str]:
    """The parameters among ``before``'s that ``model`` no longer holds as they were."""
    now = dict(model.named_parameters())
    return {name for name, value in before.items() if not torch.equal(value, now[name].detach())}


def test_the_tasks_here_are_unknown_to_the_registry():
    for name in ("EchoNumber", "SayYes"):
        with pytest.raises(KeyError):
            make_task(name)


class StepRecorder(TrainerCallback):
    def __init__(self, stop_at: int = 0):
        self.steps, self.stop_at = [], stop_at

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        if state.global_step == self.stop_at:
            control.should_training_stop = True


def sft_options(out_dir, **changes) -> SFTOptions:
    settings = dict(out_dir=str(out_dir), n_demos=16, max_steps=4, batch_size=8, learning_rate=1e-2, progress=False)
    return SFTOptions(**settings | changes)


def test_sft_trains_a_model_object_in_place_on_an_unregistered_task(small_arithmetic_model, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(small_arithmetic_model)
    tokenizer = AutoTokenizer.from_pretrained(small_arithmetic_model)
    before, recorder = weights(model), StepRecorder()
    options = sft_options(tmp_path / "run", n_eval=4)
    result = run_sft(options, EchoNumber(), model=model, tokenizer=tokenizer, callbacks=[recorder])

    assert recorder.steps == [1, 2, 3, 4], "the callback saw every step"
    assert changed(before, model) == set(before), "every weight of the object itself was trained"
    saved = load_file(result.model_dir / "model.safetensors")
    assert all(torch.equal(saved[name], p.detach()) for name, p in model.named_parameters() if name in saved)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["task"] == "EchoNumber" and config["task_object"] == class_path(EchoNumber())
    assert config["model"] == config["base_model"] == small_arithmetic_model
    assert config["model_object"] == class_path(model)
    demos = [json.loads(line) for line in (result.run_dir / "demos.jsonl").read_text().splitlines()]
    assert {demo["task"] for demo in demos} == {"EchoNumber"} and all(demo["success"] for demo in demos)
    assert result.report["task"] == "EchoNumber" and result.report["evaluation"] is not None
    assert not result.report["stopped_by_callback"]
    short_name = "/".join(small_arithmetic_model.split("/")[-2:])
    assert Image.open(result.run_dir / "plots" / "training.png").info["Title"] == f"SFT on EchoNumber — {short_name}"


def test_sft_trains_the_adapters_of_a_peft_model_object(small_arithmetic_model, tmp_path):
    base_model = AutoModelForCausalLM.from_pretrained(small_arithmetic_model)
    peft = get_peft_model(base_model, LoraConfig(r=4, lora_alpha=8, target_modules=["query_key_value", "dense"]))
    base = {name: p.detach().clone() for name, p in peft.named_parameters() if "lora_" not in name}
    adapters = {name: p.detach().clone() for name, p in peft.named_parameters() if "lora_" in name}
    tokenizer = AutoTokenizer.from_pretrained(small_arithmetic_model)
    result = run_sft(sft_options(tmp_path, model="tiny"), model=peft, tokenizer=tokenizer)
    assert changed(adapters, peft) and not changed(base, peft), "the adapters trained, the base kept"
    assert (result.model_dir / "adapter_config.json").is_file()
    assert Policy.from_pretrained(result.model_dir).model.peft_config, "the adapter loads over its recorded base"
    assert not (tmp_path / "base").exists(), "options.model (tiny) is not built when a model object is given"


def test_an_sft_callback_stops_the_run_and_the_report_says_so(small_arithmetic_model, tmp_path):
    recorder = StepRecorder(stop_at=2)
    result = run_sft(sft_options(tmp_path, model=small_arithmetic_model), callbacks=[recorder])
    assert result.steps == 2 and recorder.steps == [1, 2]
    assert result.report["stopped_by_callback"] and not result.report["stopped_by_time_limit"]
    assert "stopped by a callback" in (tmp_path / "report.md").read_text()
    assert "model_object" not in json.loads((tmp_path / "config.json").read_text()), "a name is no object"


def test_a_model_object_needs_its_tokenizer_and_trainable_weights(small_arithmetic_model, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(small_arithmetic_model)
    with pytest.raises(ValueError, match="needs its tokenizer: pass tokenizer="):
        run_sft(sft_options(tmp_path), model=model)
    with pytest.raises(ValueError, match="no trainable parameter"):
        run_rl(rl_options(tmp_path), SayYes(), model=model.requires_grad_(False), tokenizer=object())
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(small_arithmetic_model), LoraConfig(r=2))
    with pytest.raises(ValueError, match="brings its own adapters.*lora_rank to 0"):
        run_rl(rl_options(tmp_path, lora_rank=4), SayYes(), model=peft, tokenizer=object())
    with pytest.raises(ValueError, match="model must be given"):
        run_rl(rl_options(tmp_path), SayYes())
    code_built = warmed_up_policy(steps=0).model
    with pytest.raises(ValueError, match="adapters over a model built in code.*save the model"):
        run_rl(rl_options(tmp_path, lora_rank=4), SayYes(), model=code_built, tokenizer=object())
    assert not any(tmp_path.iterdir()), "a refused run writes nothing"


def rl_options(out_dir, **changes) -> PPOOptions:
    settings = dict(
        task="anything", out_dir=str(out_dir), iterations=4, episodes=16, learning_rate=3e-3, epochs=2,
        minibatch_size=8, value_learning_rate=1e-2, kl_coef=0.01, n_eval=8, eval_every=2, checkpoint_every=2,
        progress=False,
    )  # fmt: skip
    return PPOOptions(**settings | changes)


class Recorder(RLCallback):
    def __init__(self, stop_at: int = 0):
        self.updates, self.evaluations, self.stop_at = [], [], stop_at

    def on_update(self, update, metrics):
        self.updates.append((update, metrics["reward"]))
        return "reward looks fine" if update == self.stop_at else None

    def on_evaluate(self, update, report):
        self.evaluations.append((update, report["episodes"]["success"]["value"]))


@pytest.fixture
def toy():
    torch.manual_seed(0)
    return warmed_up_policy()


def test_ppo_trains_a_model_object_in_place_and_calls_back_on_every_update(toy, tmp_path):
    before, recorder, seen = weights(toy.model), Recorder(), []
    callbacks = [recorder, lambda update, metrics: seen.append(update)]
    result = run_rl(
        rl_options(tmp_path / "run"), SayYes(), model=toy.model, tokenizer=toy.tokenizer, callbacks=callbacks
    )

    assert result.iterations == 4 and result.stop_reason == "completed"
    assert [update for update, _ in recorder.updates] == seen == [1, 2, 3, 4], "every update, in order"
    metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [reward for _, reward in recorder.updates] == [row["reward"] for row in metrics if "reward" in row]
    assert [update for update, _ in recorder.evaluations] == [0, 2, 4], "the start and every evaluation"
    assert result.evaluations[4]["episodes"]["success"]["value"] == recorder.evaluations[-1][1]
    assert changed(before, toy.model) == set(before), "the object itself is the trained policy"
    saved = load_file(result.model_dir / "model.safetensors")
    assert all(torch.equal(saved[name], p.detach()) for name, p in toy.model.named_parameters() if name in saved)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["task"] == "SayYes" and config["task_object"] == class_path(SayYes())
    assert config["model"] == "" and config["model_object"] == class_path(toy.model), "built in code: no name"


def test_a_callback_stops_ppo_and_the_report_says_which(toy, tmp_path):
    result = run_rl(
        rl_options(tmp_path), SayYes(), model=toy.model, tokenizer=toy.tokenizer, callbacks=[Recorder(stop_at=2)]
    )
    reason = "stopped by callback Recorder: reward looks fine"
    assert result.iterations == 2 and result.stop_reason == reason
    assert json.loads((tmp_path / "report.json").read_text())["stop_reason"] == reason
    assert reason in (tmp_path / "report.md").read_text()
    assert max(result.evaluations) == 2, "the final evaluation is of the policy the callback stopped"


def test_resuming_a_run_started_from_objects_needs_them_again(toy, tmp_path, capsys):
    options = rl_options(tmp_path, iterations=2)
    run_rl(options, SayYes(), model=toy.model, tokenizer=toy.tokenizer)
    more = replace(options, iterations=4, resume=True)
    with pytest.raises(ValueError, match=r"cannot resume .*started from a model object \(.*GPTNeoXForCausalLM"):
        run_rl(more, SayYes())
    with pytest.raises(ValueError, match=r"it was started from a task object \(.*SayYes, recorded as 'SayYes'\);"):
        run_rl(more, model=toy.model, tokenizer=toy.tokenizer)
    capsys.readouterr()
    assert main(["ppo", "--resume", "--out-dir", str(tmp_path), "--iterations", "4"]) == 2, "nor from the command line"
    error = capsys.readouterr().err
    assert "it was started from a model object" in error and len(error.strip().splitlines()) == 1, error
    resumed = run_rl(more, SayYes(), model=warmed_up_policy().model, tokenizer=toy.tokenizer)
    assert resumed.iterations == 4 and sorted(resumed.evaluations) == [0, 2, 4]


def test_ppo_trains_the_adapters_of_a_peft_model_object(toy, tmp_path):
    toy.model.save_pretrained(tmp_path / "toy")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "toy")
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["query_key_value", "dense"]))
    base = {name: p.detach().clone() for name, p in peft.named_parameters() if "lora_" not in name}
    adapters = {name: p.detach().clone() for name, p in peft.named_parameters() if "lora_" in name}
    result = run_rl(rl_options(tmp_path / "run", n_eval=0), SayYes(), model=peft, tokenizer=toy.tokenizer)
    assert changed(adapters, peft) and not changed(base, peft), "the adapters trained, the base (the reference) kept"
    assert (result.model_dir / "adapter_config.json").is_file()
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["model"] == str(tmp_path / "toy") and config["model_object"] == class_path(peft)


def test_the_demo_runs_on_an_unregistered_task(tmp_path):
    options = DemoOptions(out_dir=str(tmp_path), n_eval=4, n_demos=16, epochs=1.0, rl_iterations=1, progress=False)
    report = run_demo(options, EchoNumber())
    assert report["task"] == "EchoNumber" and report["rl_updates"] == 1
    assert (tmp_path / "report.md").read_text().startswith("# agentic demo: EchoNumber")
    for stage in ("", "sft", "ppo"):
        config = json.loads((tmp_path / stage / "config.json").read_text())
        assert config["task"] == "EchoNumber" and config["task_object"] == class_path(EchoNumber()), stage

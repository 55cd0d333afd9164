"""LoRA SFT and RL of a chat model known by name, as `agentic sft --model smollm2-135m-instruct --lora-rank …` and
`agentic grpo/ppo --model <sft>/model --lora-rank …` run it: with the locally built chat Llama of `chat_model`,
its tokenizer padding with its end-of-turn token as SmolLM2's does."""

import json
from pathlib import Path

import pytest
import torch
from chat_model import chat_llama, chat_tokenizer
from peft import PeftModel
from transformers import AutoModelForCausalLM

from agentic import models
from agentic.cli import main
from agentic.models import MARKER, ModelSource
from agentic.policy import Policy
from agentic.training.sft import demo_dataset, sft_trainer
from agentic.training.sft_config import SFTOptions
from agentic.trajectory import read_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "tiny-chat-instruct"


@pytest.fixture(scope="module")
def known_chat_model(tmp_path_factory) -> tuple[str, str]:
    """The chat Llama as a model fetched earlier into the cache under ``NAME``: (cache folder, model directory)."""
    cache = tmp_path_factory.mktemp("models")
    directory = cache / NAME
    tokenizer = chat_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token  # as SmolLM2-135M-Instruct: <|im_end|> ends a turn and pads
    chat_llama(tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / MARKER).write_text(json.dumps({"name": NAME, "sha256": "0" * 64}))
    return str(cache), str(directory)


def make_known(patch: pytest.MonkeyPatch, cache: str) -> None:
    """``NAME`` known to `agentic.models`, its cache ``cache``."""
    source = ModelSource(NAME, "a tiny chat Llama", ("none==0",), ("none",), "tiny.gguf", "0" * 64, 0, "MIT")
    patch.setitem(models.MODELS, NAME, source)
    patch.setenv(models.CACHE_ENV, cache)


@pytest.fixture
def catalog(known_chat_model, monkeypatch) -> str:
    """``NAME`` known by name for one test; returns the model directory."""
    make_known(monkeypatch, known_chat_model[0])
    return known_chat_model[1]


@pytest.fixture(scope="module")
def sft_run(known_chat_model, tmp_path_factory) -> str:
    """`agentic sft --model NAME --lora-rank 4`, two steps at a learning rate that moves the adapters visibly."""
    out = tmp_path_factory.mktemp("sft") / "run"
    with pytest.MonkeyPatch.context() as patch:
        make_known(patch, known_chat_model[0])
        flags = ["--n-demos", "8", "--max-steps", "2", "--batch-size", "4", "--learning-rate", "0.05"]
        assert main(["sft", "--model", NAME, "--lora-rank", "4", "--out-dir", str(out), "--no-progress", *flags]) == 0
    return str(out)


def test_sft_resolves_the_name_and_records_chat_mode(sft_run, known_chat_model):
    _, directory = known_chat_model
    config = json.loads(Path(sft_run, "config.json").read_text())
    assert config["mode"] == "chat" and config["base_model"] == directory
    adapter = json.loads(Path(sft_run, "model", "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == directory, "the adapter points at the converted model"


def test_sft_demonstrations_are_chat_episodes_that_learn_the_end_of_turn_token(sft_run, known_chat_model):
    _, directory = known_chat_model
    policy = Policy.from_pretrained(directory)
    end_of_turn = policy.encoding.end_of_turn_id
    assert end_of_turn == policy.tokenizer.pad_token_id, "the case where padding could hide the end of turn"
    demos = read_trajectories(f"{sft_run}/demos.jsonl")
    assert {demo.mode for demo in demos} == {"chat"}
    trainer = sft_trainer(
        AutoModelForCausalLM.from_pretrained(directory),
        policy.tokenizer,
        demo_dataset(demos[:4]),
        SFTOptions(model=directory, out_dir=f"{sft_run}/labels", batch_size=4, progress=False),
        train_sampling_strategy="sequential",
    )
    batch = next(iter(trainer.get_train_dataloader()))
    for row, demo in enumerate(demos[:4]):
        labels = batch["labels"][row].tolist()
        learnt = [token for token in labels if token != -100]
        assert learnt.count(end_of_turn) == len(demo.turns), "every action's end-of-turn token carries the loss"
        assert all(turn.action.endswith("<|im_end|>") for turn in demo.turns)
        assert policy.tokenizer.decode(learnt) == "".join(turn.action for turn in demo.turns)
        assert labels[len(demo.token_ids) :] == [-100] * (len(labels) - len(demo.token_ids)), "padding does not"


@pytest.mark.parametrize(
    ("algorithm", "flags"), [("grpo", ["--groups", "2", "--group-size", "2"]), ("ppo", ["--episodes", "4"])]
)
def test_rl_starts_from_the_sft_adapter_in_chat_mode(sft_run, catalog, tmp_path, algorithm, flags):
    out = tmp_path / algorithm
    common = ["--task", "Arithmetic", "--iterations", "1", "--n-eval", "2", "--max-new-tokens", "8", "--no-progress"]
    argv = [algorithm, "--model", f"{sft_run}/model", "--lora-rank", "4", "--out-dir", str(out), *common, *flags]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["mode"] == "chat"
    assert json.loads((out / "eval" / "update-000000.json").read_text())["mode"] == "chat"
    assert {t.mode for t in read_trajectories(out / "samples" / "update-000001.jsonl")} == {"chat"}

    sft, base = Policy.from_pretrained(f"{sft_run}/model"), Policy.from_pretrained(catalog)
    start = Policy.from_pretrained(out / "base-model")
    ids = torch.tensor([sft.encode("<|im_start|>user\nTask: compute 12 + 30.<|im_end|>\n<|im_start|>assistant\n")])
    with torch.no_grad():
        sft_logits, start_logits, base_logits = (p.model(ids).logits for p in (sft, start, base))
    torch.testing.assert_close(start_logits, sft_logits, rtol=1e-4, atol=1e-4, msg="RL starts from the SFT model")
    assert not torch.allclose(sft_logits, base_logits, atol=1e-3), "the SFT adapter changed the model"
    trained = Policy.from_pretrained(out / "model")
    assert isinstance(trained.model, PeftModel) and trained.mode == "chat"
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((out / "base-model").resolve())

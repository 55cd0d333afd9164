"""The embedded default model: offline, deterministic, loadable like a hub model, with a tokenizer fit for actions."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentic.training.tiny_model import SENTINEL_TOKENS, build_tiny_model, task_corpus, train_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(["Arithmetic"], tmp_path_factory.mktemp("tiny"), seeds=range(50))


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


def test_loads_like_a_hub_model_with_about_a_million_parameters_and_full_rotary(model_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.model_type == "gpt_neox"
    assert 500_000 <= model.num_parameters() <= 1_500_000
    assert model.config.rope_parameters["partial_rotary_factor"] == 1.0
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token_id is not None and tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)
    logits = model(torch.tensor([tokenizer("Task: compute 1 + 2.")["input_ids"]])).logits
    assert logits.shape[-1] == len(tokenizer)


def test_building_is_deterministic(model_dir, tmp_path):
    again = build_tiny_model(["Arithmetic"], tmp_path, seeds=range(50))
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes()
    other_seed = build_tiny_model(["Arithmetic"], tmp_path / "other", seeds=range(50), seed=1)
    assert (other_seed / "model.safetensors").read_bytes() != (model_dir / "model.safetensors").read_bytes()


def test_sentinels_are_single_ordinary_tokens_that_decode_verbatim(tokenizer):
    for sentinel in SENTINEL_TOKENS:
        ids = tokenizer(sentinel, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, sentinel
        assert tokenizer.decode(ids) == sentinel
        assert ids[0] not in tokenizer.all_special_ids
    call = '<tool name="calculator">{"expression": "129 * 874"}</tool>'
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(call, add_special_tokens=False)["input_ids"])
    assert pieces[0] == '<tool name="' and pieces[-1] == "</tool>"
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == list("129874"), "digits are one token each"


@pytest.mark.parametrize("spell_names", [False, True], ids=["merged", "spelt"])
def test_a_name_has_the_same_tokens_wherever_it_is_copied_from_or_to(spell_names):
    """TwoHop copies names from the question and from results into JSON arguments: the tokens must match."""
    tokenizer = train_tokenizer(task_corpus(["TwoHop"], range(20)), spell_names=spell_names)
    for name in ("Ines Takdru", "Tornaxtrix", "Belka"):
        alone = tokenizer(name, add_special_tokens=False)["input_ids"]
        for context in (f"the founder of {name} live?", f"<result>{name}</result>", f'{{"entity": "{name}"}}'):
            ids = tokenizer(context, add_special_tokens=False)["input_ids"]
            assert any(ids[i : i + len(alone)] == alone for i in range(len(ids))), (name, context)


def test_with_spell_names_a_name_never_seen_in_training_is_spelt_letter_by_letter(tokenizer, tmp_path):
    """MultiHopKnowledge's held-out entities are new strings: spelt, they are made of the tokens every training name
    trains. Words that are not capitalised keep their merges."""
    corpus = task_corpus(["MultiHopKnowledge"], range(20))
    built = AutoTokenizer.from_pretrained(build_tiny_model(["Arithmetic"], tmp_path, seeds=range(20), spell_names=True))
    assert len(tokenizer.tokenize("Relwick")) < 7, "off by default"
    for spelt in (built, train_tokenizer(corpus, spell_names=True)):
        for context in ('{"entity": "Relwick"}', "Where is Relwick?", "<result>Relwick</result>"):
            pieces = spelt.convert_ids_to_tokens(spelt(context, add_special_tokens=False)["input_ids"])
            assert [p.lstrip("Ġ") for p in pieces if p.lstrip("Ġ") in set("Relwick")][-7:] == list("Relwick"), context
    spelt, merged = train_tokenizer(corpus, spell_names=True), train_tokenizer(corpus)
    assert spelt.tokenize(" number") == merged.tokenize(" number") == ["Ġnumber"]
    assert len(merged.tokenize("Relwick")) < 7


def test_decoding_is_lossless_and_compositional(tokenizer):
    texts = task_corpus(["Arithmetic"], range(3)) + [
        "  spaces,\ttabs\n\nand <sys>tags</sys> </tool >x",
        "unicode: héllo wörld, 日本語 ✓",
    ]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        for cut in range(len(ids) + 1):
            head, tail = tokenizer.decode(ids[:cut]), tokenizer.decode(ids[cut:])
            if "\ufffd" not in head + tail:  # a cut inside a multi-byte character is the one exception
                assert head + tail == text

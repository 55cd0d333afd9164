"""Corpus preparation: the split comes first, and no evaluation text reaches the preference pairs."""

import json
import random

import pytest

from agentic.training.corpus.chat import preference_pairs as preference_pairs_of
from agentic.training.corpus.chat import preference_rows
from agentic.training.corpus.options import CORPUS_NAMES, PrepareOptions
from agentic.training.corpus.pairs import dropped, preference_pairs, shuffled
from agentic.training.corpus.prepare import prepare, split_by_group
from agentic.training.corpus.specs import CORPORA, Example, load_examples

STANDINS = sorted(set(CORPORA) - {"chat"})  # chat prompts have no references: their pairs come from a dataset


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module", params=STANDINS)
def prepared(request, tmp_path_factory):
    run = tmp_path_factory.mktemp(request.param)
    prepare(str(run), PrepareOptions(corpus=request.param, standin=True, seed=3))
    return run / "prepare"


def assert_unseen(rows, pairs, train):
    """No row's prompt is a prompt of ``pairs``/``train``, and no row's reference occurs anywhere in their text.

    Prompts are compared whole: short openings ("Once upon a time, ...") recur across stories.
    """
    prompts = {row["prompt"] for row in pairs + train}
    text = "\n".join(row[key] for row in pairs for key in ("prompt", "chosen", "rejected"))
    text += "\n".join(row[key] for row in train for key in ("prompt", "reference"))
    assert rows and pairs
    for row in rows:
        assert row["prompt"] not in prompts
        assert row["reference"].strip() not in text


def test_no_evaluation_text_reaches_the_preference_pairs(prepared):
    pairs = read(prepared / "pairs_train.jsonl") + read(prepared / "pairs_heldout.jsonl")
    assert_unseen(
        read(prepared / "eval.jsonl"), pairs, read(prepared / "train.jsonl") + read(prepared / "heldout.jsonl")
    )


def test_heldout_pairs_share_no_text_with_training_pairs(prepared):
    assert_unseen(
        read(prepared / "heldout.jsonl"), read(prepared / "pairs_train.jsonl"), read(prepared / "train.jsonl")
    )


def test_parts_are_disjoint_groups_of_the_requested_sizes(prepared):
    parts = {name: read(prepared / f"{name}.jsonl") for name in ("eval", "heldout", "train")}
    assert len(parts["eval"]) == 32 and len(parts["heldout"]) == 32 and len(parts["train"]) > 32
    groups = [{row["group"] for row in rows} for rows in parts.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert all(row["reference"].startswith(" ") for rows in parts.values() for row in rows)


def test_preparation_is_deterministic_given_the_seed(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        prepare(str(tmp_path / name), PrepareOptions(corpus="tinystories", standin=True, seed=seed))
    files = ("eval.jsonl", "pairs_train.jsonl")
    same = [(tmp_path / "a" / "prepare" / f).read_text() == (tmp_path / "b" / "prepare" / f).read_text() for f in files]
    other = [
        (tmp_path / "a" / "prepare" / f).read_text() == (tmp_path / "c" / "prepare" / f).read_text() for f in files
    ]
    assert all(same) and not any(other)


def test_split_takes_whole_groups_and_drops_what_it_cuts():
    examples = [Example(f"p{i}", f" r{i}", group=f"g{i // 3}") for i in range(12)]
    evaluation, train = split_by_group(examples, [4, 0], seed=0)
    assert len(evaluation) == 4 and len(train) == 6  # the second group's last two examples are dropped
    assert not {e.group for e in evaluation} & {e.group for e in train}


def test_rejected_texts_are_corruptions_or_foreign_references():
    rng = random.Random(0)
    text = " the small cat sat on the warm mat"
    assert sorted(shuffled(text, rng).split()) == sorted(text.split()) and shuffled(text, rng) != text
    shorter = dropped(text, rng, 0.3).split()
    assert 0 < len(shorter) < len(text.split())
    assert shuffled(" same same", rng) is None and dropped(" one", rng, 0.3) is None
    examples = [Example("p0", " a b c", "g0"), Example("p1", " d e f", "g0"), Example("p2", " g h i", "g1")]
    rejected = {p["chosen"]: p["rejected"] for p in preference_pairs(examples, seed=0, kinds=["mismatch"])}
    assert rejected[" a b c"] == rejected[" d e f"] == " g h i"  # never a reference of the same group
    assert rejected[" g h i"] in (" a b c", " d e f")


def test_corpora_become_prompt_and_reference():
    story = load_examples("tinystories", standin=True)[0]
    assert (
        story.prompt.endswith(".") and story.reference.startswith(" ") and len(story.reference) > len(story.prompt) / 2
    )
    article = load_examples("cnn_dailymail", standin=True)[0]
    assert article.prompt.endswith("\nSummary:")
    pages = load_examples("wikitext103", standin=True)
    assert len({e.group for e in pages}) < len(pages)  # paragraphs of one page share a group
    assert not any(e.prompt.lstrip().startswith("=") for e in pages)


def test_local_files_by_their_columns(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "Q: two plus two?", "reference": "four"}\n')
    assert load_examples(str(tmp_path / "pairs.jsonl"))[0] == Example("Q: two plus two?", " four", "row-0")
    (tmp_path / "stories.jsonl").write_text('{"text": "One day it rained. We stayed in. We read books."}\n')
    assert load_examples(str(tmp_path / "stories.jsonl"))[0].reference == " We stayed in. We read books."
    (tmp_path / "bad.jsonl").write_text('{"title": "x"}\n')
    with pytest.raises(ValueError, match="columns"):
        load_examples(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ValueError, match="unknown corpus"):
        load_examples("not_a_corpus")


def test_the_corpus_names_are_the_specs_names():
    """The options (light, for the command line) and the corpus specs (heavy) name the same corpora."""
    assert tuple(CORPORA) == CORPUS_NAMES


def test_chat_prompts_come_from_a_prompt_or_messages_column_as_one_user_message(tmp_path):
    rows = [
        {"prompt": "What is tea?"},
        {"prompt": [{"role": "user", "content": "Why is the sky blue?"}]},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
    ]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:2]))
    assert [e.prompt for e in load_examples(str(tmp_path / "prompts.jsonl"))] == [
        "What is tea?",
        "Why is the sky blue?",
    ]
    chats = [
        {"messages": [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "Apple."}]},
        {"messages": rows[2]["prompt"]},
        {
            "messages": [
                {"role": "user", "content": "A?"},
                {"role": "assistant", "content": "B"},
                {"role": "user", "content": "C?"},
            ]
        },
    ]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chats))
    examples = load_examples(str(tmp_path / "chats.jsonl"))
    assert [(e.prompt, e.has_reference) for e in examples] == [("Name a fruit.", False), ("A?", False)], (
        "the prompt is what precedes the first assistant message, when it is one user message"
    )
    standin = load_examples("chat", standin=True)
    assert len(standin) == 240 and all(not e.has_reference and e.prompt.endswith((".", "?")) for e in standin)


def test_chat_pairs_come_from_the_preference_dataset_and_no_evaluation_prompt_reaches_them(tmp_path):
    options = PrepareOptions(corpus="chat", standin=True, preferences="chat", eval_size=40, heldout_size=48, seed=3)
    summary = prepare(str(tmp_path), options)
    part = tmp_path / "prepare"
    evaluation, train = read(part / "eval.jsonl"), read(part / "train.jsonl")
    pairs = {name: read(part / f"pairs_{name}.jsonl") for name in ("train", "heldout")}
    assert (summary["eval_examples"], summary["heldout_examples"], summary["train_examples"]) == (40, 0, 200)
    assert summary["conversational"] and not summary["references"] and summary["pairs_dropped_for_eval_prompts"] > 0
    assert (
        len(pairs["heldout"]) == 48 and summary["train_pairs"] == 480 - 48 - summary["pairs_dropped_for_eval_prompts"]
    )
    eval_prompts = {row["prompt"] for row in evaluation}
    assert not eval_prompts & {row["prompt"] for row in train + pairs["train"] + pairs["heldout"]}
    assert not {p["prompt"] for p in pairs["heldout"]} & {p["prompt"] for p in pairs["train"]}, "split by prompt"
    assert {p["kind"] for p in pairs["train"]} == {"off_topic", "repetitive", "refusal", "terse"}
    with pytest.raises(ValueError, match="has prompts only: give the reward model's pairs as --preferences"):
        prepare(str(tmp_path / "none"), PrepareOptions(corpus="chat", standin=True))


def test_preference_datasets_plain_or_conversational_with_the_prompt_explicit_or_implicit(tmp_path):
    user, good, bad = (
        [{"role": "user", "content": "Hi?"}],
        [{"role": "assistant", "content": "Hello!"}],
        [{"role": "assistant", "content": "No."}],
    )
    formats = {
        "implicit_chat": {"chosen": user + good, "rejected": user + bad},
        "explicit_chat": {"prompt": user, "chosen": good, "rejected": bad},
        "explicit_plain": {"prompt": "Hi?", "chosen": " Hello!", "rejected": " No."},
        "implicit_plain": {"chosen": "Hi? Hello!", "rejected": "Hi? No."},
    }
    for name, row in formats.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        (pair,), conversational = preference_pairs_of(preference_rows(str(path)))
        assert conversational == name.endswith("chat")
        assert (pair["prompt"].strip(), pair["chosen"].strip(), pair["rejected"].strip()) == ("Hi?", "Hello!", "No.")
    assert PrepareOptions(preferences="owner/dataset").preferences == "owner/dataset", "a hub id is taken"
    with pytest.raises(ValueError, match="preference dataset file .*missing.jsonl does not exist"):
        PrepareOptions(preferences=str(tmp_path / "missing.jsonl"))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "x", "chosen": "y"}) + "\n")
    with pytest.raises(ValueError, match="needs chosen and rejected columns"):
        preference_pairs_of(preference_rows(str(tmp_path / "bad.jsonl")))

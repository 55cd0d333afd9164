"""What a model was trained on, read from the run directories of its lineage."""

from __future__ import annotations

import json
from pathlib import Path

from agentic.provenance import trained_tasks


def write(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return path


def test_a_models_run_directory_and_the_runs_it_started_from_are_read(tmp_path):
    sft = write(tmp_path / "sft" / "config.json", {"task": "BFCL-live_simple", "base_model": str(tmp_path / "base")})
    write(tmp_path / "sft" / "model" / "config.json", {"model_type": "gpt_neox"})
    (tmp_path / "base").mkdir()
    rl = write(tmp_path / "rl" / "config.json", {"task": "Arithmetic,TwoHop", "model": str(tmp_path / "sft" / "model")})
    write(tmp_path / "rl" / "checkpoints" / "update-40" / "model" / "config.json", {"model_type": "gpt_neox"})
    assert trained_tasks(tmp_path / "rl" / "checkpoints" / "update-40" / "model") == {
        "Arithmetic": rl,
        "TwoHop": rl,
        "BFCL-live_simple": sft,
    }


def test_an_adapter_leads_to_its_base_and_nested_tasks_count(tmp_path):
    demo = write(tmp_path / "demo" / "config.json", {"task": "Arithmetic", "sft": {"task": "BFCL-multiple"}})
    write(tmp_path / "demo" / "base-model" / "config.json", {"model_type": "gpt_neox"})
    write(
        tmp_path / "ppo" / "model" / "adapter_config.json",
        {"base_model_name_or_path": str(tmp_path / "demo" / "base-model")},
    )
    assert trained_tasks(tmp_path / "ppo" / "model") == {"Arithmetic": demo, "BFCL-multiple": demo}


def test_unknown_origins_record_nothing_and_bad_files_are_ignored(tmp_path):
    assert trained_tasks("HuggingFaceTB/SmolLM2-135M-Instruct") == {}
    write(tmp_path / "run" / "config.json", "{not json")
    write(tmp_path / "run" / "model" / "config.json", ["a", "list"])
    assert trained_tasks(tmp_path / "run" / "model") == {}
    loop = write(tmp_path / "a" / "config.json", {"task": "TwoHop", "model": str(tmp_path / "a" / "model")})
    (tmp_path / "a" / "model").mkdir()
    assert trained_tasks(tmp_path / "a" / "model") == {"TwoHop": loop}, "a run that names its own model ends"

"""`agentic demo` end to end at toy size: every stage runs and the report says what happened."""

from __future__ import annotations

import json

from agentic.cli import main


def test_demo_writes_a_before_after_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--n-eval", "4", "--n-demos", "16", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and "untrained" in printed and "after SFT" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["untrained"]["tool_calls"]["decision_points"] == 4
    assert report["sft"]["episodes"]["episodes"] == 4
    assert (out / "report.md").read_text().startswith("# agentic demo: Arithmetic")
    for path in ("tiny-model/config.json", "sft/model/config.json", "sft/demos.jsonl", "sft/report.md", "sft/eval.md"):
        assert (out / path).exists(), path

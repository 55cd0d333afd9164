"""`agentic bfcl` from the outside: the oracle's table, a trained model's run, the contamination guard, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("bfcl_eval", reason="needs bfcl-eval: pip install --no-deps bfcl-eval==2026.3.23")

from agentic import make_task  # noqa: E402
from agentic.cli import main  # noqa: E402
from agentic.tasks.bfcl.benchmark import trajectory_steps  # noqa: E402
from agentic.trajectory import read_trajectories  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model SFT-trained on BFCL-live_simple by `run_sft`, which records its task in its run directory."""
    from agentic.training.sft import run_sft
    from agentic.training.sft_config import SFTOptions
    from agentic.training.tiny_model import build_tiny_model

    base = build_tiny_model(
        ["BFCL-live_simple"],
        tmp_path_factory.mktemp("base"),
        seeds=range(10_000, 10_040),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=2048,
    )
    out = tmp_path_factory.mktemp("sft")
    options = SFTOptions(
        model=str(base), task="BFCL-live_simple", out_dir=str(out), n_demos=8, max_steps=1, batch_size=4, progress=False
    )
    return run_sft(options).model_dir


def test_the_oracle_scores_1_everywhere_and_the_table_follows_bfcl(capsys, tmp_path):
    categories = "simple_python,parallel,irrelevance,live_simple,multi_turn_base"
    code, out, err = run(
        ["bfcl", "--oracle", "--categories", categories, "--limit", "6", "--out", str(tmp_path)], capsys
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert {name: row["accuracy"]["value"] for name, row in report["categories"].items()} == dict.fromkeys(
        categories.split(","), 1.0
    )
    summary = report["summary"]
    assert summary["non_live"]["categories"] == ["simple_python", "parallel"]
    assert summary["non_live"]["missing"] == ["multiple", "parallel_multiple"]
    assert summary["irrelevance"]["missing"] == ["live_irrelevance"] and summary["overall"]["value"] == 1.0
    verdicts = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == 30 and all(v["valid"] for v in verdicts)
    assert "| simple_python | 1.000" in (tmp_path / "report.md").read_text() and "overall" in out


def test_a_model_trained_on_a_family_is_refused_that_family(trained, capsys, tmp_path):
    code, _, err = run(
        ["bfcl", "--model", str(trained), "--categories", "live_multiple", "--out", str(tmp_path)], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "BFCL-live_simple" in err and "config.json" in err and not (tmp_path / "report.json").exists()


def test_a_trained_model_is_scored_on_another_family(trained, capsys, tmp_path):
    code, _, err = run(
        ["bfcl", "--model", str(trained), "--categories", "simple_python", "--limit", "3", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["trained_on"] == ["BFCL-live_simple"] and report["categories"]["simple_python"]["entries"] == 3
    trajectories = read_trajectories(tmp_path / "trajectories" / "simple_python.jsonl")
    task = make_task("BFCL-simple_python")
    verdicts = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    for trajectory, verdict in zip(trajectories, verdicts):
        assert trajectory.instance["id"] == verdict["id"]
        assert (
            trajectory.success
            == verdict["valid"]
            == task.verdict(trajectory.instance, trajectory_steps(trajectory), trajectory.terminated).valid
        )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["bfcl", "--oracle", "--categories", "simple_java"], "unknown categories simple_java"),
        (["bfcl", "--oracle", "--limit", "-1"], "--limit"),
        (["bfcl", "--model", "./no/such/model"], "does not exist"),
        (["bfcl"], "one of the arguments --model --oracle is required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, fragment, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_without_bfcl_eval_the_error_names_the_install_command(tmp_path):
    """bfcl-eval hidden from the import system: the tasks are still made (and listed), running one says how to
    install it."""
    argv = ["bfcl", "--oracle", "--categories", "simple_python", "--out", str(tmp_path)]
    script = (
        "import sys; sys.modules['bfcl_eval'] = None; import agentic; from agentic.cli import main; "
        "print(agentic.make_task('BFCL-simple_python').description); "
        f"print('exit', main({argv!r}))"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "BFCL simple_python" in ran.stdout and ran.stdout.rstrip().endswith("exit 2")
    assert len(ran.stderr.strip().splitlines()) == 1 and "pip install --no-deps bfcl-eval==2026.3.23" in ran.stderr

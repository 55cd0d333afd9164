"""`agentic bfcl` from the outside: the oracle's table, a trained model's run, the contamination guard, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("bfcl_eval", reason="needs bfcl-eval: pip install --no-deps bfcl-eval==2026.3.23")

from agentic import make_task, tool_call  # noqa: E402
from agentic.cli import main  # noqa: E402
from agentic.evaluation import decision_points, evaluate_tool_calls, tool_call_metrics  # noqa: E402
from agentic.rollout import oracle_trajectories  # noqa: E402
from agentic.sampling import Sampling  # noqa: E402
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
        ["bfcl", "--oracle", "--categories", categories, "--limit", "6", "--out-dir", str(tmp_path)], capsys
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
        ["bfcl", "--model", str(trained), "--categories", "live_multiple", "--out-dir", str(tmp_path)], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "BFCL-live_simple" in err and "config.json" in err and not (tmp_path / "report.json").exists()


def test_a_trained_model_is_scored_on_another_family(trained, capsys, tmp_path):
    code, _, err = run(
        ["bfcl", "--model", str(trained), "--categories", "simple_python", "--limit", "3", "--out-dir", str(tmp_path)],
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
    argv = ["bfcl", "--oracle", "--categories", "simple_python", "--out-dir", str(tmp_path)]
    script = (
        "import sys; sys.modules['bfcl_eval'] = None; import agentic; from agentic.cli import main; "
        "print(agentic.make_task('BFCL-simple_python').description); "
        f"print('exit', main({argv!r}))"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "BFCL simple_python" in ran.stdout and ran.stdout.rstrip().endswith("exit 2")
    assert len(ran.stderr.strip().splitlines()) == 1 and "pip install --no-deps bfcl-eval==2026.3.23" in ran.stderr


# -- agentic eval on BFCL: each entry's own functions --------------------------------------------


def test_eval_judges_each_entrys_calls_against_that_entrys_functions(trained):
    """A BFCL task offers no tools of its own (`task.tools` is empty): each decision point is judged with the
    functions its entry offers, so the oracle's calls are all valid and accurate, and a call to a function the
    entry does not offer is not valid."""
    from transformers import AutoTokenizer

    task = make_task("BFCL-parallel_multiple")
    assert not task.tools
    points = decision_points(oracle_trajectories(task, range(4), AutoTokenizer.from_pretrained(trained), mode="raw"))
    metrics = tool_call_metrics(task, points, [tool_call(p.tool, p.arguments) for p in points])
    assert metrics["decision_points"] == len(points) > 4
    assert metrics["tool_call_validity"]["value"] == metrics["tool_call_accuracy"]["value"] == 1.0
    assert set(metrics["per_tool"]) == {p.tool for p in points}
    offered_first = {t.name for t in task.instance_tools(points[0].instance)}
    elsewhere = next(p for p in points if p.tool not in offered_first)
    foreign = tool_call(elsewhere.tool, elsewhere.arguments)
    assert tool_call_metrics(task, points[:1], [foreign])["tool_call_validity"]["k"] == 0


class GrammarSpy:
    """A real policy whose `generate` also keeps the grammar each row was sampled under."""

    def __init__(self, policy):
        self.policy, self.grammars = policy, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, contexts, sampling, grammar):
        self.grammars += [grammar(row, sampling.max_new_tokens) for row in range(len(contexts))]
        return self.policy.generate(contexts, sampling, grammar)


def test_constrained_eval_offers_each_entrys_functions(trained):
    """Under constrained sampling each decision point's grammar admits the call its entry's oracle made there."""
    from agentic.constraint import Grammars
    from agentic.policy import Policy, encode

    spy = GrammarSpy(Policy.from_pretrained(trained))
    task = make_task("BFCL-simple_python")
    metrics, _ = evaluate_tool_calls(
        spy, task, range(3), Sampling(temperature=0.0, max_new_tokens=256, constrained=True)
    )
    points = decision_points(oracle_trajectories(task, range(3), spy.tokenizer, mode=spy.mode))
    assert len(spy.grammars) == len(points) == metrics["decision_points"] == 3
    for grammar, point in zip(spy.grammars, points):
        matcher = Grammars.of(spy.tokenizer).matcher(grammar)
        assert matcher.consume_tokens(encode(spy.tokenizer, tool_call(point.tool, point.arguments)))
        assert matcher.is_stopped()
    assert metrics["tool_call_validity"]["k"] == metrics["first_sentinel_is_tool"]["k"]


def test_eval_refuses_a_bfcl_category_of_a_family_the_model_trained_on(trained, capsys, tmp_path):
    argv = ["eval", "--model", str(trained), "--task", "BFCL-live_multiple", "--n", "2", "--out-dir", str(tmp_path)]
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("agentic eval: ")
    assert "BFCL-live_simple" in err and "config.json" in err and not (tmp_path / "report.json").exists()
    argv = ["eval", "--model", str(trained), "--task", "BFCL-simple_python", "--n", "2", "--no-episodes"]
    code, _, err = run([*argv, "--out-dir", str(tmp_path)], capsys)
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0, err
    assert report["trained_on"] == ["BFCL-live_simple"] and report["tool_calls"]["decision_points"] == 2

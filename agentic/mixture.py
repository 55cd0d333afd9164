"""Several tasks, one policy: a `TaskMixture` plays the task of each seed, so SFT demonstrations and RL rollouts
interleave the tasks while every task keeps its own seeds and its own training split.

Seed ``s`` plays task number ``s mod k`` of ``k`` (consecutive seeds cycle through the tasks in order; a GRPO group,
one seed repeated, stays on one task), drawing that task's own instance for ``s`` (`agentic.task.Task.instance_for`),
so no evaluation instance of any task reaches training. Evaluation is per task, on each task's own evaluation
instances (`agentic.evaluation.evaluate_each`). Trajectories record the task they played (``Trajectory.task``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentic.registry import make_task, split_task_specs
from agentic.task import Task


@dataclass(frozen=True)
class TaskMixture:
    """``tasks`` played together, under ``labels`` (each one's spec as given, or its name for an object): the keys of
    per-task evaluations and metrics."""

    tasks: tuple[Task, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.tasks) < 2 or len(self.labels) != len(self.tasks):
            raise ValueError("a task mixture needs two tasks or more, one label each")
        if len(set(self.labels)) < len(self.labels):
            raise ValueError(f"a task is named twice in the mixture {', '.join(self.labels)}")
        if len({task.free_text for task in self.tasks}) > 1:
            raise ValueError(f"free-text tasks and agent tasks cannot be mixed: {', '.join(self.labels)}")

    @property
    def name(self) -> str:
        return ",".join(self.labels)

    @property
    def free_text(self) -> bool:
        return self.tasks[0].free_text

    def task_for(self, seed: int) -> Task:
        """The task seed ``seed`` plays."""
        return self.tasks[seed % len(self.tasks)]


def task_label(task: str | Task) -> str:
    return task if isinstance(task, str) else task.name


def played_task(tasks: str | Task | TaskMixture | Sequence[str | Task]) -> Task | TaskMixture:
    """What a run plays: one task, from a spec or an object, or a `TaskMixture` from a comma-separated list of specs
    (`agentic.registry.split_task_specs`) or a sequence of specs and objects."""
    if isinstance(tasks, (Task, TaskMixture)):
        return tasks
    given = split_task_specs(tasks) if isinstance(tasks, str) else list(tasks)
    if not given:
        raise ValueError("no task given")
    made = tuple(make_task(t) if isinstance(t, str) else t for t in given)
    return made[0] if len(made) == 1 else TaskMixture(made, tuple(map(task_label, given)))


def given_by_name(task: Any) -> bool:
    """Whether ``task`` (what a run was given for ``options.task``) names its tasks only: None, a spec, or specs."""
    if task is None or isinstance(task, str):
        return True
    return isinstance(task, Sequence) and all(isinstance(t, str) for t in task)


def episode_task(task: str | Task | TaskMixture, seed: int) -> str | Task:
    """The task an episode of ``seed`` plays: the mixture's for that seed, else ``task`` itself."""
    return task.task_for(seed) if isinstance(task, TaskMixture) else task


def component_tasks(task: Task | TaskMixture) -> list[tuple[str, Task]]:
    """(label, task) of every task ``task`` plays: one for a task, each of a mixture's."""
    if isinstance(task, TaskMixture):
        return list(zip(task.labels, task.tasks))
    return [(task.name, task)]

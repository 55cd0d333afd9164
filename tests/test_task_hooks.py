"""The Task hooks a benchmark needs, through the environment: instances by seed, tools per instance, and a
conversation of several requests (`Task.instance_for`, `Task.instance_tools`, `Task.next_user_turn`)."""

from __future__ import annotations

from agentic import AgenticEnvironment, Score, Task, finish, tool, tool_call


def make_echo(word: str):
    @tool(name=f"say.{word}")
    def say(text: str) -> str:
        """Say something.

        Args:
            text: What to say.
        """
        return f"{word}: {text}"

    return say


class Conversation(Task):
    """Instance i is entry i; each entry brings its own tool and two requests, one per <finish>."""

    name = "Conversation"
    entries = [("hello", ["greet", "greet again"]), ("bye", ["leave", "leave again"])]
    tools_by_word = {word: (make_echo(word),) for word, _ in entries}

    def instance_for(self, seed, rng, split):
        return {"word": self.entries[seed][0], "requests": self.entries[seed][1]}

    def instance_tools(self, instance):
        return self.tools_by_word[instance["word"]]

    def prompt(self, instance):
        return f"<user>{instance['requests'][0]}</user>\n"

    def next_user_turn(self, instance, answer, history):
        done = 1 + sum(turn.event == "user_turn" for turn in history)
        return instance["requests"][done] if done < len(instance["requests"]) else None

    def score(self, instance, answer, history):
        ok = sum(turn.event == "tool" for turn in history) == 2
        return Score(float(ok), success=ok)


def test_seed_picks_the_instance_and_its_tools():
    env = AgenticEnvironment(Conversation())
    env.reset(seed=1)
    assert env.instance["word"] == "bye" and env.tools.names == ["say.bye"]
    _, _, _, _, info = env.step(tool_call("say.hello", {"text": "x"}))
    assert info["event"] == "bad_tool_call", "another instance's tool is not offered"
    env.reset(seed=0)
    assert env.tools.names == ["say.hello"]
    _, _, _, _, info = env.step(tool_call("say.hello", {"text": "x"}))
    assert info["event"] == "tool" and info["tool_result"].text == "hello: x"


def test_finish_hands_over_the_next_request_until_there_is_none():
    env = AgenticEnvironment(Conversation())
    env.reset(seed=0)
    env.step(tool_call("say.hello", {"text": "hi"}))
    _, reward, terminated, truncated, info = env.step(finish("done"))
    assert info["event"] == "user_turn" and info["delta"] == "\n<user>greet again</user>\n"
    assert not terminated and not truncated and reward == 0.0 and info["score"] is None
    assert env.context.endswith("<finish>done</finish>\n<user>greet again</user>\n")
    env.step(tool_call("say.hello", {"text": "hi again"}))
    *_, terminated, _, info = env.step(finish("done"))
    assert terminated and info["event"] == "finish" and info["score"].success


def test_a_task_without_the_hooks_samples_and_ends_at_finish():
    env = AgenticEnvironment("Arithmetic")
    first, _ = env.reset(seed=3)
    assert env.tools.names == ["calculator"]
    *_, terminated, _, info = env.step(finish("1"))
    assert terminated and info["event"] == "finish"
    assert env.reset(seed=3)[0] == first

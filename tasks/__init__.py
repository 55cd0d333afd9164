"""Built-in tasks: `Task` subclasses found through the `agentic.tasks` entry points."""

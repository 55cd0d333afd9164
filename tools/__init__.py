"""Built-in tools: typed functions registered with `@agentic.tool`, found through the `agentic.tools` entry points."""

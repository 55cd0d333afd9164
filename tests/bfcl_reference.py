"""BFCL's own AST checker, imported for the parity test with its model table replaced by a stub.

``bfcl_eval.eval_checker.ast_eval.ast_checker`` imports ``bfcl_eval.constants.model_config``, which imports every
API client BFCL supports (dependencies installed without ``--no-deps`` only). The checker uses that table for
one thing: whether a model's function names had their dots replaced by underscores. The stub answers no for
every model, as for the agents here, whose tool names keep their dots. Only tests import this module.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass

MODEL = "agentic-slm"


@dataclass(frozen=True)
class _ModelConfig:
    underscore_to_dot: bool = False


class _Table(dict):
    def __missing__(self, key):
        return _ModelConfig()


def bfcl_ast_checker():
    """(``ast_checker`` function, ``Language`` enum) from the installed bfcl-eval."""
    name = "bfcl_eval.constants.model_config"
    stub = types.ModuleType(name)
    stub.MODEL_CONFIG_MAPPING = _Table()
    saved = sys.modules.get(name)
    sys.modules[name] = stub
    try:
        module = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
    finally:
        if saved is None:
            del sys.modules[name]
        else:
            sys.modules[name] = saved
    from bfcl_eval.constants.enums import Language

    return module.ast_checker, Language

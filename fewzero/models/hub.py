"""Models saved and shared as the ecosystem does: a folder of ``config.json`` and ``model.safetensors``.

[save_pretrained][fewzero.models.hub.save_pretrained] writes the architecture config the
registry captured (what the constructor was given) and the weights; [from_pretrained][fewzero.models.hub.from_pretrained]
rebuilds the model from them with the same strict checks as a checkpoint (every tensor present,
no extra one, each of its shape, all finite). A Hugging Face Hub repository id works where
``huggingface_hub`` is installed (``pip install "fewzero[hub]"``);
[push_to_hub][fewzero.models.hub.push_to_hub] uploads such a folder, with a model card
([model_card][fewzero.models.hub.model_card]) that records the training data, the protocol and
the result. Files are written atomically: an interrupted save leaves the previous one whole.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..checks import resolve_device
from ..configs import check_saveable, json_safe
from ..files import replace_atomically
from .loading import model_from_state
from .weights import check_finite_state

__all__ = ["from_pretrained", "model_card", "push_to_hub", "save_pretrained"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT = "fewzero-pretrained-v1"


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over ``path`` (user's mode)."""
    replace_atomically(path, write, name="directory")


def _cell(value: Any) -> str:
    """A Markdown table cell: ``|`` escaped, line breaks as spaces."""
    return " ".join(str(value).replace("|", "\\|").split())


def model_card(
    model: nn.Module,
    training_data: str = "not recorded",
    protocol: str = "not recorded",
    results: Mapping[str, float] | None = None,
) -> str:
    """A model card (Markdown with Hub metadata) that records what a reader needs to trust it.

    Args:
        model: The model (its ``config`` names the architecture and backbone).
        training_data: What it was trained on (e.g. ``"PASCAL-5i folds 1-3"``).
        protocol: How it was scored (e.g. ``"fewzero-eval --protocol hsnet, fold 0, 1000 episodes"``).
        results: ``{metric: value}`` of that evaluation.

    Examples:
        >>> from fewzero.models import create_model
        >>> card = model_card(create_model("hsnet", backbone="resnet18"), "toy", "toy", {"miou": 0.5})
        >>> "library_name: fewzero" in card and "| miou | 0.5 |" in card
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got a {type(model).__name__}")
    if results is not None and not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping of metric -> value, got a {type(results).__name__}")
    config = dict(getattr(model, "config", {}))
    rows = "\n".join(
        f"| {_cell(k)} | {_cell(v)} |" for k, v in (results or {}).items()
    ) or "| - | - |"
    backbone = config.get("backbone", "-")
    return (
        "---\nlibrary_name: fewzero\ntags:\n- few-shot-segmentation\n- image-segmentation\n---\n\n"
        f"# {config.get('arch', type(model).__name__)} over {backbone}\n\n"
        "Load it with `fewzero.models.from_pretrained(...)`.\n\n"
        f"## Training data\n\n{training_data}\n\n"
        f"## Evaluation protocol\n\n{protocol}\n\n"
        f"## Results\n\n| metric | value |\n|---|---|\n{rows}\n\n"
        f"## Configuration\n\n```json\n{json.dumps(json_safe(config), indent=2, default=str)}\n```\n"
    )


def save_pretrained(
    model: nn.Module, directory: str | os.PathLike[str], card: str | None = None
) -> Path:
    """Write ``model`` to ``directory``: ``config.json``, ``model.safetensors`` (and ``README.md``).

    Args:
        model: A fewzero model (its ``config`` has ``arch``).
        directory: Created if missing; ``config.json`` and ``model.safetensors`` are replaced
            atomically, with the user's file mode; nothing else in it is touched.
        card: A model card to write as ``README.md``. Default: [model_card][fewzero.models.hub.model_card]'s
            template with nothing recorded, written only where the folder holds no
            ``README.md`` yet (a card already there is kept, as huggingface_hub keeps it; pass
            ``card=`` to replace it).

    Returns:
        The directory.

    Raises:
        ValueError: for a model without an ``arch`` config, or with non-finite weights.
        FileExistsError: naming ``directory`` when it is an existing file.

    Examples:
        >>> import tempfile
        >>> from fewzero.models import create_model, from_pretrained, save_pretrained
        >>> path = save_pretrained(create_model("hsnet", backbone="resnet18"), tempfile.mkdtemp())
        >>> type(from_pretrained(path)).__name__
        'HSNet'
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if not isinstance(config, Mapping) or "arch" not in config:
        raise ValueError(
            f"model must carry a config with 'arch' (a fewzero model), got {type(model).__name__}"
        )
    check_saveable(config, f"directory {str(directory)!r}")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    check_finite_state(state, "model")
    if card is not None and not isinstance(card, str):
        raise TypeError(
            f"card must be the model card's Markdown text (a str) or None, got "
            f"{type(card).__name__}; build one with fewzero.models.model_card(model, ...)"
        )
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise FileExistsError(
            f"directory {str(out)!r} is an existing file; save_pretrained writes a folder "
            "(config.json, model.safetensors, README.md): give a folder path"
        )
    out.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": json_safe(dict(config))}
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    _replace(out / CONFIG_NAME, lambda p: Path(p).write_text(text))
    _replace(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": FORMAT}))
    readme = out / CARD_NAME
    if card is not None or not readme.exists():  # a README.md already there is kept
        card_text = card if card is not None else model_card(model)
        _replace(readme, lambda p: Path(p).write_text(card_text))
    return out


def _local_folder(source: str | os.PathLike[str], revision: str | None) -> Path:
    path = Path(source)
    if path.is_dir():
        return path
    text = str(source)
    repo_like = text.count("/") == 1 and not text.startswith((".", "/", "~")) and "\\" not in text
    if path.exists() or not repo_like:
        raise FileNotFoundError(
            f"pretrained must be a folder written by save_pretrained or a Hub repo id, got "
            f"{str(source)!r} (not a folder)"
        )
    if path.parent.is_dir():  # 'runs/my-hsnt': its first part is a local folder, a typo
        names = [p.name for p in path.parent.iterdir() if p.is_dir()]
        close = difflib.get_close_matches(path.name, names, n=3)
        hint = f"; did you mean {[str(path.parent / c) for c in close]}?" if close else ""
        raise FileNotFoundError(
            f"pretrained {text!r}: no such folder in the local folder {str(path.parent)!r}"
            f"{hint} (a Hub repo id is read from the Hub only where no local folder "
            f"{path.parent.name!r} exists)"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise ImportError(
            f"{str(source)!r} is not a local folder; reading it from the Hugging Face Hub needs "
            "huggingface_hub: pip install 'fewzero[hub]'"
        ) from err
    try:
        return Path(
            snapshot_download(
                str(source), revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]
            )
        )
    except Exception as err:  # offline, unreachable, or no such repository: both readings fail
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set and the Hub cache lacks it" if offline else (
            f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        )
        raise FileNotFoundError(
            f"pretrained {text!r} is neither a local folder (no such folder in "
            f"{str(Path.cwd())!r}) nor a Hub repository fewzero could read ({why}): check the "
            "path, or the repo id and the network"
        ) from err


def from_pretrained(
    pretrained: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    revision: str | None = None,
) -> nn.Module:
    """Rebuild a model saved by [save_pretrained][fewzero.models.hub.save_pretrained].

    Args:
        pretrained: The folder, or a Hub repository id (``"user/name"``, needs
            ``huggingface_hub``).
        device: Where the model goes.
        revision: A Hub revision (branch, tag or commit).

    Returns:
        The model in ``eval()`` mode.

    Raises:
        FileNotFoundError: the folder or one of its two files is missing (named).
        ValueError: a config of another format or architecture, or weights that do not fit
            the architecture (missing, extra or misshapen tensors) or are not finite.
    """
    from safetensors.torch import load_file

    device = resolve_device(device)  # before any file is read
    folder = _local_folder(pretrained, revision)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{str(folder / name)!r} is missing: not a save_pretrained folder"
            )
    try:
        payload = json.loads((folder / CONFIG_NAME).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(folder / CONFIG_NAME)!r} is not valid JSON: {err}") from err
    found = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(found, str) and found.startswith("fewzero-pretrained-") and found != FORMAT:
        raise ValueError(
            f"{str(folder / CONFIG_NAME)!r} was written by another fewzero (format {found!r}; "
            f"this fewzero {__version__} reads {FORMAT!r}): upgrade fewzero "
            "(pip install -U fewzero) to load it"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{str(folder / CONFIG_NAME)!r} is not a fewzero config (format "
            f"{payload.get('format') if isinstance(payload, dict) else None!r}, expected {FORMAT!r})"
        )
    weights = folder / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors' SafetensorError: a truncated or foreign file
        raise ValueError(
            f"{str(weights)!r} is not a readable safetensors file ({weights.stat().st_size} "
            f"bytes; {type(err).__name__}: {err}): it is truncated or corrupt; save the model "
            "again with save_pretrained"
        ) from err
    label = f"{str(folder)!r}"
    check_finite_state(state, label)
    try:
        model = model_from_state(payload["config"], state)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{label}: {err}") from err
    return model.to(device).eval()


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    card: str | None = None,
    private: bool = True,
    commit_message: str = "Upload fewzero model",
) -> str:
    """Save ``model`` as [save_pretrained][fewzero.models.hub.save_pretrained] does and upload the folder.

    Needs ``huggingface_hub`` (``pip install "fewzero[hub]"``) and a login
    (``huggingface-cli login`` or ``HF_TOKEN``). The repository is created if missing
    (``private`` by default).

    Returns:
        The URL of the upload's commit.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise ImportError("push_to_hub needs huggingface_hub: pip install 'fewzero[hub]'") from err
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"repo_id {repo_id!r} is no Hub repository id ('user/model'): {err}") from err
    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, card=card)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, commit_message=commit_message
            )
        except Exception as err:  # httpx's ConnectError is neither an OSError nor ours
            unreachable = isinstance(err, OSError) or "connect" in type(err).__name__.lower()
            if not unreachable:
                raise
            raise ConnectionError(
                f"push_to_hub({repo_id!r}) could not reach the Hugging Face Hub "
                f"({type(err).__name__}: {err}); nothing was uploaded. Check the network, or "
                "save the model locally with save_pretrained(DIR) and upload DIR later"
            ) from err
    return str(getattr(info, "commit_url", info))

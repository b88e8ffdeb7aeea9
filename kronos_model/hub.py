"""Loading and saving checkpoints the Hugging Face way: ``config.json`` + ``model.safetensors``, nothing pickled.

Local directories, hub repo ids (``NeoQuasar/Kronos-small``, with ``revision``) and the bundled offline
checkpoint (``kronos-bt/nano``) all resolve here. Loading is strict: a wrong key or shape is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import config_from_dict, config_to_dict
from .errors import CheckpointError, HubUnavailableError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
BUNDLED_MODELS = {"kronos-bt/nano": CHECKPOINTS_DIR / "nano"}
DEFAULT_MODEL = "kronos-bt/nano"

# Buffers that the reference writes but that we rebuild ourselves; their absence is harmless.
_TOLERATED_MISSING = ("rotary.inv_freq", "tokenizer.bsq.basis", "tokenizer.bsq.group_basis")


def resolve_model_dir(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """A local directory holding ``config.json`` and ``model.safetensors``: a path, a bundled name or a hub id."""
    if str(name_or_path) in BUNDLED_MODELS:
        return BUNDLED_MODELS[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") != 1:
        raise CheckpointError(
            f"{name_or_path}: not a checkpoint directory and not a hub repo id 'owner/name'"
        )
    return _download(str(name_or_path), revision, cache_dir, local_files_only, token, force_download)


def _download(repo_id, revision, cache_dir, local_files_only, token, force_download) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        files = [
            hf_hub_download(
                repo_id,
                name,
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=local_files_only,
                force_download=force_download,
            )
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        ]
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, HfHubHTTPError) as exc:
        if isinstance(exc, HfHubHTTPError) and getattr(exc.response, "status_code", None) in (401, 404):
            raise CheckpointError(
                f"{repo_id} (revision {revision or 'main'}) was not found on the hub: {exc}"
            ) from exc
        raise HubUnavailableError(
            f"cannot fetch {repo_id} (revision {revision or 'main'}) from the Hugging Face hub and it is not in the "
            f"local cache ({type(exc).__name__}). Offline? Download it elsewhere with `hf download {repo_id}` and "
            "pass the local directory instead, or use the bundled model (name None or 'kronos-bt/nano')."
        ) from exc
    return Path(files[0]).parent


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: no {CONFIG_NAME}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    path = model_dir / WEIGHTS_NAME
    if not path.is_file():
        others = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(
            p.name for p in model_dir.glob("*.pt")
        )
        hint = (
            f" (found {others}: pickled weights are never loaded; convert them to safetensors)"
            if others
            else ""
        )
        raise CheckpointError(f"{model_dir}: no {WEIGHTS_NAME}{hint}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupted or not a safetensors file ({exc})") from exc


def check_state_dict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing/unexpected key and every shape mismatch."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights and not k.endswith(_TOLERATED_MISSING)]
    unexpected = [k for k in weights if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    for key, tensor in weights.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            problems.append(
                f"shape mismatch for {key}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected[key].shape)}"
            )
    if problems:
        raise CheckpointError(
            f"{source} does not match {type(module).__name__}'s config: " + "; ".join(problems)
        )


class HubMixin:
    """``from_pretrained`` / ``save_pretrained`` for modules whose ``__init__`` kwargs are their config."""

    config_class: type

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` (sorted keys) and ``model.safetensors`` into ``save_directory``."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(
            json.dumps(config_to_dict(self.config), indent=2, sort_keys=True) + "\n"
        )
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        return out

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        map_location: str | torch.device = "cpu",
        **config_overrides: Any,
    ):
        """Load a local directory, a bundled name or a hub repo id (pin ``revision``); returns the module in eval mode."""
        model_dir = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        raw = {**read_config(model_dir), **config_overrides}
        config = config_from_dict(cls.config_class, raw, source=str(model_dir))
        module = cls(**config_to_dict(config))
        weights = read_weights(model_dir)
        check_state_dict(module, weights, str(model_dir / WEIGHTS_NAME))
        _check_buffers(module, weights, str(model_dir))
        module.load_state_dict(weights, strict=False)
        return module.to(map_location).eval()


def _check_buffers(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Rebuilt buffers (RoPE frequencies, BSQ bases) must agree with a checkpoint that stores them."""
    own = module.state_dict()
    for key in weights:
        if key.endswith(_TOLERATED_MISSING) and not torch.allclose(weights[key].to(own[key].dtype), own[key]):
            raise CheckpointError(f"{source}: buffer {key} differs from the value this config implies")


def module_fingerprint(*modules: torch.nn.Module) -> str:
    """sha256 over configs and weights of the modules: a stable id for caches and run manifests."""
    digest = hashlib.sha256()
    for module in modules:
        config = getattr(module, "config", None)
        if config is not None:
            digest.update(json.dumps(config_to_dict(config), sort_keys=True).encode())
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            flat = tensor.detach().cpu().contiguous()
            if flat.dtype == torch.bfloat16:
                flat = flat.view(torch.int16)
            digest.update(flat.numpy().tobytes())
    return digest.hexdigest()

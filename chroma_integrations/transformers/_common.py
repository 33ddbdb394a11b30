"""What every capture kind shares: the error type, pooling names, default input names and previews."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from chroma_core.errors import ChromaError
from chroma_core.sessions import QuerySession, TrainingSession

Pooling = Literal["mean", "cls", "max", "last"]
POOLINGS = ("mean", "cls", "max", "last")


class UnsupportedPipelineError(ChromaError, ValueError):
    """A pipeline (or model) ChromaPipeline cannot capture embeddings for, or an option it cannot honour."""


def default_input_uri(item: Any) -> str:
    """A stable name for an input: a path or URL as given, else a content hash."""
    if isinstance(item, str):
        if item.startswith(("http://", "https://", "file://", "/", "./")) and "\n" not in item and len(item) < 2048:
            return item
        return "sha1:" + hashlib.sha1(item.encode("utf-8")).hexdigest()
    if _is_image(item):
        digest = hashlib.sha1(f"{item.mode}{item.size}".encode())
        digest.update(item.tobytes())
        return "sha1:" + digest.hexdigest()
    if hasattr(item, "tobytes") and hasattr(item, "dtype"):  # a numpy waveform
        digest = hashlib.sha1(f"{item.dtype}{getattr(item, 'shape', '')}".encode())
        digest.update(item.tobytes())
        return "sha1:" + digest.hexdigest()
    wave: Any = item.get("raw", item.get("array")) if isinstance(item, dict) else None
    if wave is not None and hasattr(wave, "tobytes"):  # {"raw": wave, "sampling_rate": ...}
        digest = hashlib.sha1(f"{item.get('sampling_rate')}{wave.dtype}{wave.shape}".encode())
        digest.update(wave.tobytes())
        return "sha1:" + digest.hexdigest()
    try:
        text = json.dumps(item, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(item)
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def _is_image(item: Any) -> bool:
    return hasattr(item, "tobytes") and hasattr(item, "size") and hasattr(item, "mode")


def render_chat(messages: Any) -> str | None:
    """A chat (a list of ``{"role", "content"}`` messages) as one line per message, ``role: content``."""
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) and "role" in m for m in messages):
        return None
    lines = []
    for m in messages:
        content = m.get("content", "")
        if isinstance(content, list):  # multimodal content parts: keep their text
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        lines.append(f"{m['role']}: {content}")
    return "\n".join(lines)


def default_preview(item: Any) -> str | None:
    """What a person recognises an input by: the text or prompt itself, ``image 640x480 RGB``, ``audio 2.5 s``."""
    if isinstance(item, str):
        return item
    if _is_image(item):
        return f"image {item.size[0]}x{item.size[1]} {item.mode}"
    chat = render_chat(item)
    if chat is not None:
        return chat
    if isinstance(item, dict):
        for key in ("text", "sequences"):
            if isinstance(item.get(key), str):
                return str(item[key])
        wave: Any = item.get("raw", item.get("array"))
        rate = item.get("sampling_rate")
        if hasattr(wave, "shape") and rate:
            return f"audio {wave.shape[-1] / rate:.1f} s"
    return None


class Indexed:
    """The k-th item of a dataset, fetched only when its output is logged."""

    __slots__ = ("dataset", "k")

    def __init__(self, dataset: Any, k: int) -> None:
        self.dataset, self.k = dataset, k

    def get(self) -> Any:
        return self.dataset[self.k]


def open_session(
    mode: str, session: TrainingSession | QuerySession | None, embedding_set: dict[str, Any], kwargs: dict[str, Any]
) -> TrainingSession | QuerySession:
    """The wrapper's session: the one given, else a new one of the mode's kind for ``embedding_set``."""
    if mode not in ("training", "query"):
        raise UnsupportedPipelineError(f"mode must be 'training' or 'query', not {mode!r}.")
    if session is not None:
        return session
    cls = TrainingSession if mode == "training" else QuerySession
    return cls(embedding_set=embedding_set, **kwargs)


def save_training(session: TrainingSession | QuerySession, kwargs: dict[str, Any]) -> Any:
    """``session.save(**kwargs)``, or a clear error for a query session (it stores as it goes)."""
    if not isinstance(session, TrainingSession):
        raise ChromaError("save() is for mode='training'; a query session stores nothing to save.")
    return session.save(**kwargs)

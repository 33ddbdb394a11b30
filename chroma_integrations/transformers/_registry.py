"""Which kind captures which pipeline task."""

from __future__ import annotations

from chroma_integrations.transformers._kind import Kind
from chroma_integrations.transformers.audio import AudioKind
from chroma_integrations.transformers.detection import DetectionKind
from chroma_integrations.transformers.generation import GenerationKind
from chroma_integrations.transformers.multimodal import ZeroShotImageKind
from chroma_integrations.transformers.text import FeatureKind, TextKind, ZeroShotTextKind
from chroma_integrations.transformers.vision import ImageFeatureKind, ImageKind

ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}

_KINDS: dict[str, Kind] = {}
for _kind in (
    TextKind(),
    FeatureKind(),
    ZeroShotTextKind(),
    ImageKind(),
    ImageFeatureKind(),
    ZeroShotImageKind(),
    AudioKind(),
    DetectionKind(),
    GenerationKind(),
):
    for _task in _kind.tasks:
        _KINDS[_task] = _kind  # later kinds win: FeatureKind refines TextKind's feature-extraction

SUPPORTED_TASKS = tuple(_KINDS)


def kind_for(task: str) -> Kind | None:
    return _KINDS.get(ALIASES.get(task, task))

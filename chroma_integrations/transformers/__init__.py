"""Hugging Face integrations: ``ChromaPipeline`` for pipelines, ``ChromaSentenceTransformer`` for sentence models.

One module per kind of pipeline (text, vision, multimodal, audio, detection, generation); see docs/huggingface.md.
"""

from chroma_integrations.transformers._common import Pooling, UnsupportedPipelineError, default_input_uri
from chroma_integrations.transformers._registry import SUPPORTED_TASKS
from chroma_integrations.transformers.pipeline import ChromaPipeline
from chroma_integrations.transformers.sentence_transformers import ChromaSentenceTransformer

__all__ = [
    "SUPPORTED_TASKS",
    "ChromaPipeline",
    "ChromaSentenceTransformer",
    "Pooling",
    "UnsupportedPipelineError",
    "default_input_uri",
]

"""Adapters that translate a framework's world (transformers, MLflow, model serving) into chroma_core calls."""

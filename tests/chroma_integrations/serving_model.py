"""An MLflow pyfunc model decorated with @recommend, importable by `mlflow models serve` (PYTHONPATH=repo root)."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np

from chroma_integrations.serving import recommend

FEATURES = [f"f{i}" for i in range(8)]
EMBEDDING_SET = {"model": "pyfunc-demo", "model_version": "1", "layer": "features"}


class PlainModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return (model_input[FEATURES].to_numpy() * np.arange(1, 9)).sum(axis=1).tolist()


class ChromaModel(PlainModel):
    @recommend(
        embedding=lambda self, context, model_input, params=None: model_input[FEATURES].to_numpy(dtype=np.float32),
        input_uri=lambda self, context, model_input, params=None: [f"row/{i}" for i in model_input["id"]],
        embedding_set=EMBEDDING_SET,
    )
    def predict(self, context, model_input, params=None):
        return super().predict(context, model_input, params)

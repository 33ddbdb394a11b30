"""Everything framework-agnostic: config, embedding sets, the batch format, sessions, transports, the engine.

Nothing here imports transformers, torch or mlflow.
"""

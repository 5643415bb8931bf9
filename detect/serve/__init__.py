"""The detection service: ``detect serve`` (FastAPI + uvicorn).

settings (YAML < env < flags) → models (one Predictor a model file) → batching (one thread a model)
→ routes (/v1/detect, /v1/models, health, metrics) and jobs (video and evaluation jobs in SQLite
or PostgreSQL) → app (:func:`detect.serve.app.create_app`) → server (``detect serve``).
"""

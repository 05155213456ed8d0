"""``composa serve``: a trained model behind HTTP, with a demo page.

Built on Starlette (routing, requests, responses) and served by uvicorn (HTTP/1.1,
graceful shutdown on SIGTERM); see docs/serve.md for why. Routes:

- ``POST /predict``: ``{"text": "..."}`` -> ``{"label": ..., "probabilities": {...}}``;
  ``{"inputs": [...]}`` (or ``"texts"``) -> ``{"predictions": [...]}``. A tagger takes
  ``{"tokens": [...]}`` too; a model of feature rows takes ``{"x": [...]}``.
- ``GET /health``: the model's task and labels, and the batching counters.
- ``GET /``: the demo page (a text box, a button, the label and a bar per class).

Concurrent requests are batched (:mod:`composa.serve.batching`). Bad input gets a 4xx
JSON ``{"error": ...}`` and the server keeps serving.
"""
from .app import ServeSettings, create_app, serve

__all__ = ["ServeSettings", "create_app", "serve"]

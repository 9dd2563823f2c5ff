"""The demo remote service: a separate program, the stand-in external service ``remote`` jobs poll.

Run as ``daphne ... proj.demo_service:app`` (the Procfile's ``demo-service``). It imports
nothing from ``tasks_app`` or ``realtime`` and uses neither Django nor the project's settings;
``tasks_app.kinds.remote`` talks to it over HTTP only. The contract is in ``app``'s docstring.
"""

from __future__ import annotations

from proj.demo_service.app import MAX_BODY_BYTES, TOKEN_ENV, app, create_app
from proj.demo_service.jobs import FAIL_ERROR

__all__ = ["FAIL_ERROR", "MAX_BODY_BYTES", "TOKEN_ENV", "app", "create_app"]

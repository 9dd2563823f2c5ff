"""ASGI entry point: HTTP → Django; WebSocket → origin check → session auth → consumers.

Anonymous sockets are refused by the consumers before ``accept()`` (HTTP 403); sockets
from an origin not in ``ALLOWED_HOSTS`` are refused by ``AllowedHostsOriginValidator``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
# Django must be set up before the consumers (and the models they use) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

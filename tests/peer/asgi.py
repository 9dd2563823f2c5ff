"""The peer as ASGI (daphne): Django runs the sync view in its one sync thread."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.peer.settings")
application = get_asgi_application()

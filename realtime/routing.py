"""WebSocket URL patterns: protocol v1 and the original demo's endpoint."""

from django.urls import path

from realtime.consumers import JobsConsumer, SeedProgressConsumer

websocket_urlpatterns = [
    path("ws/jobs/", JobsConsumer.as_asgi()),
    path("prog/", SeedProgressConsumer.as_asgi()),
]

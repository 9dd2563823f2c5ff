from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """Sockets only: consumers, routing and the channel-layer messaging."""

    name = "realtime"
    verbose_name = "Realtime"

"""``manage.py ensure_demo_user``: create or update the demo superuser."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEFAULT_PASSWORD = "demo"


class Command(BaseCommand):
    help = "Create or update the superuser DEMO_USERNAME / DEMO_PASSWORD (refuses 'demo' without debug)."

    def handle(self, *args: Any, **options: Any) -> None:
        username, password = settings.DEMO_USERNAME, settings.DEMO_PASSWORD
        if not settings.DEBUG and password == DEFAULT_PASSWORD:
            raise CommandError(
                "DEMO_PASSWORD is the default 'demo' while DJANGO_DEBUG is off; set DEMO_PASSWORD to a real password"
            )
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} superuser {username!r}")

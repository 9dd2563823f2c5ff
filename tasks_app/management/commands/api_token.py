"""``manage.py api_token``: create, list and revoke API tokens (``tasks_app.tokens``).

python manage.py api_token create USERNAME [--name NAME]   # prints the token, once
python manage.py api_token list USERNAME
python manage.py api_token revoke PREFIX
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from tasks_app import tokens
from tasks_app.errors import ApplicationError

ACTION_CREATE = "create"
ACTION_LIST = "list"
ACTION_REVOKE = "revoke"


def _user(username: str) -> User:
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise CommandError(f"no user {username!r}") from None


class Command(BaseCommand):
    help = "Create, list or revoke API tokens (Authorization: Bearer <token> on /api/)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = actions.add_parser(ACTION_CREATE, help="create a token and print it (shown this once)")
        create.add_argument("username")
        create.add_argument("--name", default="", help="what the token is for")
        listing = actions.add_parser(ACTION_LIST, help="list a user's tokens (prefix, name, created, last used)")
        listing.add_argument("username")
        revoke = actions.add_parser(ACTION_REVOKE, help="revoke the token with this prefix")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == ACTION_CREATE:
                self.create_token(options["username"], options["name"])
            elif options["action"] == ACTION_LIST:
                self.list_tokens(options["username"])
            else:
                self.revoke_token(options["prefix"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def create_token(self, username: str, name: str) -> None:
        """Print the new token alone on stdout (``TOKEN=$(manage.py api_token create me)``);
        the note goes to stderr."""
        token, raw = tokens.api_token_create(user=_user(username), name=name)
        self.stdout.write(raw)
        self.stderr.write(f"Created API token {token.prefix} for {username!r}; it is shown only this once.")

    def list_tokens(self, username: str) -> None:
        """One line per token: prefix, created, last used, name (tab-separated)."""
        for token in tokens.api_token_list(user=_user(username)):
            last_used = token.last_used_at.isoformat() if token.last_used_at else "never"
            self.stdout.write(f"{token.prefix}\t{token.created_at.isoformat()}\t{last_used}\t{token.name}")

    def revoke_token(self, prefix: str) -> None:
        """Revoke any user's token by its prefix."""
        token = tokens.api_token_revoke(prefix=prefix)
        self.stdout.write(f"Revoked API token {token.prefix} of {token.user.username!r}")

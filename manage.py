#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    """Run administrative tasks. A configuration or database error is one line on stderr
    (exit status 2), never a traceback, unless ``--traceback`` asks for it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    try:
        execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, DatabaseError) as exc:
        if "--traceback" in sys.argv:
            raise
        if isinstance(exc, ImproperlyConfigured):
            line = f'configuration error: {exc} (README "Environment variables")'
        else:
            line = f"database error: {exc} (has make run, or manage.py migrate, set it up?)"
        sys.stderr.write(f"manage.py: {line}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()

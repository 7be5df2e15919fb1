#!/usr/bin/env python
"""Django's command-line utility for jitaccess."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitaccess.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # Bad configuration is an operator's problem: one clear line, no traceback.
        sys.exit(f"configuration error: {exc}")


if __name__ == "__main__":
    main()

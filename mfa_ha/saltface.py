"""Helpers shared by the Salt faces (execution, state, beacon, runner modules)."""

from __future__ import annotations

import functools

import psycopg2
from salt.exceptions import CommandExecutionError, SaltException


def call_args(kwargs: dict) -> dict:
    """Keyword arguments a user passed, without Salt's ``__pub_*`` bookkeeping."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def translate_errors(func):
    """Let the core's Salt exceptions through; turn driver and OS errors into one that names them."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SaltException:
            raise
        except psycopg2.Error as err:
            raise CommandExecutionError(f"PostgreSQL error: {str(err).strip()}") from err
        except OSError as err:
            raise CommandExecutionError(f"{err.strerror or err}: {err.filename or ''}".strip(": ")) from err

    return wrapper

"""Helpers shared by the Salt faces (execution, state, beacon, runner modules)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import psycopg2
from salt.exceptions import CommandExecutionError, SaltException, SaltInvocationError

from mfa_ha.errors import InvalidInput, InvalidPillar, MfaHaError

# What a state catches around a call: the core's errors and the Salt errors they become.
FAILURES = (MfaHaError, InvalidInput, CommandExecutionError, SaltInvocationError)


def call_args(kwargs: dict) -> dict:
    """Keyword arguments a user passed, without Salt's ``__pub_*`` bookkeeping."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def pillar_value(pillar, key: str, default=None, resolve_sdb=None):
    """``key`` (``a:b:c``) from a minion's ``__pillar__`` as plain dicts and lists, every
    ``sdb://`` string in it resolved with ``resolve_sdb`` (``__salt__["sdb.get"]``); one that
    does not resolve is an error naming its key, never used literally.

    The same on Salt 3006, 3007 and 3008: ``pillar.get(..., unmask=True)`` exists only on
    3008, whose pillar containers (MaskedDict) hide their values only when printed."""
    value = pillar
    for part in key.split(":"):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return _plain(value, resolve_sdb, key)


def _plain(value, resolve_sdb, where: str):
    if isinstance(value, Mapping):
        return {k: _plain(v, resolve_sdb, f"{where}:{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, resolve_sdb, f"{where}:{i}") for i, v in enumerate(value)]
    if resolve_sdb is not None and isinstance(value, str) and value.startswith("sdb://"):
        resolved = resolve_sdb(value)
        if resolved is None or (isinstance(resolved, str) and resolved.startswith("sdb://")):
            raise InvalidInput(f"{where}: {value} does not resolve (is its sdb profile configured on this minion?)")
        return resolved
    return value


def translate_errors(func):
    """The core's errors as Salt's (a bad argument as ``SaltInvocationError``; a bad pillar and
    the rest as ``CommandExecutionError``, which ``salt-call`` does not frame as "invalid
    arguments" followed by the docstring) with the core's message; driver and OS errors named too."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SaltException:
            raise
        except InvalidPillar as err:
            raise CommandExecutionError(str(err)) from err
        except InvalidInput as err:
            raise SaltInvocationError(str(err)) from err
        except MfaHaError as err:
            raise CommandExecutionError(str(err)) from err
        except psycopg2.Error as err:
            raise CommandExecutionError(f"PostgreSQL error: {str(err).strip()}") from err
        except OSError as err:
            raise CommandExecutionError(f"{err.strerror or err}: {err.filename or ''}".strip(": ")) from err

    return wrapper

"""Commands from templates: every value validated, then shell-quoted.

Nothing a user typed reaches a shell unquoted: a backup id, a cluster name, a path, a
host, a user or a port is checked against its exact form first (`InvalidValue` otherwise),
then quoted with `shlex.quote`; typed task ids are checked by `runbook.listing.check_ids`.
Only command templates from the cluster file (`{!name}`), which the operator wrote as
shell on purpose, go in verbatim.
"""

from __future__ import annotations

import re
import shlex

from runbook.clusters import HOST_RE, NAME_RE, PATH_RE, USER_RE

BACKUP_ID_RE = re.compile(r"^scheduler-backup-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}$")
# Aurora task ids: role-env-job-instance-uuid; letters, digits, '-', '_', '.'. Typed ids
# are checked against it, and against the listing, in runbook.listing.check_ids.
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class InvalidValue(ValueError):
    """A value that does not have the form its kind requires."""


def backup_id(value: str) -> str:
    if not isinstance(value, str) or not BACKUP_ID_RE.fullmatch(value):
        raise InvalidValue(f"not a backup id (scheduler-backup-yyyy-MM-dd-HH-mm): {value!r}")
    return value


def cluster_name(value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidValue(f"not a cluster name (letters, digits, . _ -): {value!r}")
    return value


def path(value: str) -> str:
    if not isinstance(value, str) or not PATH_RE.fullmatch(value) or "/../" in value + "/":
        raise InvalidValue(f"not an absolute path of safe characters: {value!r}")
    return value


def host(value: str) -> str:
    if not isinstance(value, str) or not HOST_RE.fullmatch(value):
        raise InvalidValue(f"not a host name: {value!r}")
    return value


def user(value: str) -> str:
    if not isinstance(value, str) or not USER_RE.fullmatch(value):
        raise InvalidValue(f"not a user name: {value!r}")
    return value


def port(value: int) -> str:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValue(f"not a port: {value!r}")
    return str(value)


# `{name}` or `{!name}`; `${name}` is the shell's own and stays as it is.
PLACEHOLDER_RE = re.compile(r"(?<!\$)\{(!?)([a-z_]+)\}")


def placeholders(template: str) -> set[str]:
    return {("!" if bang else "") + name for bang, name in PLACEHOLDER_RE.findall(template)}


def render(template: str, quoted: dict[str, str], verbatim: dict[str, str] | None = None) -> str:
    """Fill `{name}` with shell-quoted values and `{!name}` with verbatim ones.

    Every placeholder must have a value: a missing one is a bug, not an empty string.
    """
    verbatim = verbatim or {}

    def fill(m: re.Match[str]) -> str:
        bang, name = m.group(1), m.group(2)
        source = verbatim if bang else quoted
        if name not in source:
            kind = "verbatim value" if bang else "value"
            raise KeyError(f"template {template!r} needs {kind} {name!r}")
        return source[name] if bang else shlex.quote(source[name])

    return PLACEHOLDER_RE.sub(fill, template)

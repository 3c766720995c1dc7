"""The scheduler's environment file (`/etc/default/aurora-scheduler`, Debian layout).

Edits are made here, on the text, and written back whole: a line is replaced in place,
everything else (comments, order, other variables) stays byte for byte. Flags in
`EXTRA_SCHEDULER_ARGS` are replaced when present and added otherwise, never appended
twice: a flag given twice aborts the scheduler's start.
"""

from __future__ import annotations

import re
import shlex

ASSIGN_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
TIME_RE = re.compile(r"^\d+(ns|us|ms|secs|mins|hrs|days)$")

BOGUS_MASTER = "zk://localhost:1111/mesos/master"
DISABLE_FLAGS = {
    "-max_registration_delay": "360mins",
    "-reconciliation_initial_delay": "365days",
}
AUTH_FLAG = "-http_authentication_mechanism"


class EnvFileError(ValueError):
    """The file cannot be read or edited safely."""


def _unquote(raw: str) -> str:
    raw = raw.strip()
    try:
        parts = shlex.split(raw, comments=True, posix=True)
    except ValueError as exc:
        raise EnvFileError(f"cannot parse value {raw!r}: {exc}") from None
    return " ".join(parts)


def parse(text: str) -> dict[str, str]:
    """The variables the file assigns, with ${VAR} expanded as bash would (simple cases)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        m = ASSIGN_RE.match(line.strip())
        if not m:
            continue
        value = _unquote(m.group("value"))
        quoted_single = m.group("value").strip().startswith("'")
        if not quoted_single:
            value = VAR_RE.sub(lambda v: values.get(v.group(1) or v.group(2), ""), value)
        values[m.group("name")] = value
    return values


def _set_var(text: str, name: str, value: str) -> str:
    lines = text.split("\n")
    new = f"{name}={_quote(value)}"
    found = False
    for i, line in enumerate(lines):
        m = ASSIGN_RE.match(line.strip())
        if m and m.group("name") == name:
            if found:
                raise EnvFileError(f"{name} is assigned twice; fix the file by hand first")
            lines[i] = new
            found = True
    if not found:
        if lines and lines[-1] == "":
            lines.insert(len(lines) - 1, new)
        else:
            lines.append(new)
    return "\n".join(lines)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def flags(extra: str) -> list[tuple[str, str | None]]:
    """EXTRA_SCHEDULER_ARGS as (flag, value) pairs; the packages word-split it unquoted."""
    out: list[tuple[str, str | None]] = []
    for word in extra.split():
        name, eq, value = word.partition("=")
        out.append((name, value if eq else None))
    return out


def _join(pairs: list[tuple[str, str | None]]) -> str:
    return " ".join(n if v is None else f"{n}={v}" for n, v in pairs)


def set_flags(extra: str, wanted: dict[str, str]) -> str:
    """Each wanted flag once, with its value: replaced where it stood, else added at the end."""
    out: list[tuple[str, str | None]] = []
    for n, v in flags(extra):
        if n not in wanted:
            out.append((n, v))
        elif n not in {x for x, _ in out}:
            out.append((n, wanted[n]))
    out += [(n, v) for n, v in wanted.items() if n not in {x for x, _ in out}]
    return _join(out)


def remove_flag(extra: str, name: str) -> str:
    return _join([(n, v) for n, v in flags(extra) if n != name])


def disable(text: str) -> str:
    """prep.disable: the bogus Mesos master and the two long delays, each once."""
    values = parse(text)
    if "EXTRA_SCHEDULER_ARGS" not in values and "MESOS_MASTER" not in values:
        raise EnvFileError(
            "neither MESOS_MASTER nor EXTRA_SCHEDULER_ARGS is set: not a Debian-style environment file"
        )
    text = _set_var(text, "MESOS_MASTER", BOGUS_MASTER)
    extra = set_flags(values.get("EXTRA_SCHEDULER_ARGS", ""), DISABLE_FLAGS)
    return _set_var(text, "EXTRA_SCHEDULER_ARGS", extra)


def drop_auth(text: str) -> str:
    """prep.auth: remove -http_authentication_mechanism from EXTRA_SCHEDULER_ARGS."""
    extra = parse(text).get("EXTRA_SCHEDULER_ARGS", "")
    return _set_var(text, "EXTRA_SCHEDULER_ARGS", remove_flag(extra, AUTH_FLAG))


def has_auth_flag(text: str) -> bool:
    return any(n == AUTH_FLAG for n, _ in flags(parse(text).get("EXTRA_SCHEDULER_ARGS", "")))


def check_disabled(text: str) -> list[str]:
    """What is wrong with a disabled environment file; empty when the three values are there once."""
    problems = []
    values = parse(text)
    if values.get("MESOS_MASTER") != BOGUS_MASTER:
        problems.append(f"MESOS_MASTER is {values.get('MESOS_MASTER')!r}, not {BOGUS_MASTER!r}")
    pairs = flags(values.get("EXTRA_SCHEDULER_ARGS", ""))
    for name, value in DISABLE_FLAGS.items():
        found = [v for n, v in pairs if n == name]
        if found != [value]:
            problems.append(f"{name} is {found!r} in EXTRA_SCHEDULER_ARGS, want [{value!r}] once")
    return problems

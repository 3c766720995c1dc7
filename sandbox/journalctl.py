"""The `journalctl` stand-in on a simulated host (`python -m sandbox.journalctl ARGS`).

The unit's output is in the host's journal (HostPaths.journal, written by sandbox.service
in journald's `short` shape). Like systemd's journalctl (systemd/systemd
src/shared/journal-util.c, access_check_var_log_journal): a user outside the groups
`adm` and `systemd-journal` does not see the system journal, where the unit's lines
are; journalctl then shows none of them: it prints
`-- No entries --` on stdout and its hint on stderr (neither with -q) and exits 0. In the
sandbox only root reads the journal (through sudo).

Options: `-u UNIT`/`--unit=UNIT` (`.service` optional), `-n N`/`--lines=N` (the last N
lines), `--no-pager`, `-q`/`--quiet`, `-o short|cat`/`--output=...`, `--since=TIME`
(`YYYY-MM-DD HH:MM[:SS]` or `HH:MM[:SS]` today, in the host's zone), `-a`, `-l`,
`--no-hostname` is not supported. Anything else is refused as journalctl refuses it.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sandbox.layout import UNIT, HostPaths

HINT = (
    "Hint: You are currently not seeing messages from other users and the system.\n"
    "      Users in groups 'adm', 'systemd-journal' can see all messages.\n"
    "      Pass -q to turn off this notice."
)
NO_ENTRIES = "-- No entries --"
LINE_RE = re.compile(
    r"^(?P<stamp>\w{3} \d{2} \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<ident>[^\s\[]+)\[(?P<pid>\d+)\]: (?P<message>.*)$"
)


class Refused(Exception):
    pass


@dataclass
class Query:
    units: list[str]
    lines: int | None = None
    quiet: bool = False
    output: str = "short"
    since: datetime | None = None


def _value(argv: list[str], i: int, short: str, long: str) -> tuple[str, int]:
    arg = argv[i]
    if arg.startswith(long + "="):
        return arg[len(long) + 1 :], i + 1
    if arg.startswith(short) and len(arg) > len(short):
        return arg[len(short) :], i + 1
    if i + 1 >= len(argv):
        raise Refused(f"journalctl: option '{arg}' requires an argument")
    return argv[i + 1], i + 2


def _since(raw: str) -> datetime:
    today = datetime.now()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            pass
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            t = datetime.strptime(raw, fmt)
            return today.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=0)
        except ValueError:
            pass
    raise Refused(f"Failed to parse timestamp: {raw}")


def parse_args(argv: list[str]) -> Query:
    q = Query(units=[])
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--no-pager", "-a", "--all", "-l", "--full", "--no-tail"):
            i += 1
        elif arg in ("-q", "--quiet"):
            q.quiet = True
            i += 1
        elif arg == "-u" or arg.startswith("--unit") or (arg.startswith("-u") and arg[2:3] != "-"):
            unit, i = _value(argv, i, "-u", "--unit")
            q.units.append(unit.removesuffix(".service"))
        elif arg.startswith(("--lines", "-n")):
            if arg in ("-n", "--lines") and (i + 1 >= len(argv) or not argv[i + 1].isdigit()):
                q.lines, i = 10, i + 1  # journalctl: -n alone means 10
                continue
            raw, i = _value(argv, i, "-n", "--lines")
            if not raw.isdigit():
                raise Refused(f"Failed to parse lines '{raw}'")
            q.lines = int(raw)
        elif arg.startswith(("--output", "-o")):
            raw, i = _value(argv, i, "-o", "--output")
            if raw not in ("short", "cat"):
                raise Refused(f"Unknown output format '{raw}'.")
            q.output = raw
        elif arg == "-S" or arg.startswith("--since"):
            raw, i = _value(argv, i, "-S", "--since")
            q.since = _since(raw)
        elif arg.startswith("-"):
            raise Refused(f"journalctl: unrecognized option '{arg}'")
        else:
            raise Refused(f"Failed to add match '{arg}': Invalid argument")
    return q


def _stamp(stamp: str, year: int) -> datetime | None:
    try:
        return datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return None


def select(lines: list[str], q: Query) -> list[str]:
    """The journal lines the query shows, formatted for its output mode."""
    year = datetime.now().year
    out = []
    for line in lines:
        m = LINE_RE.match(line)
        if m is None:
            continue
        if q.since is not None:
            when = _stamp(m.group("stamp"), year)
            if when is None or when < q.since:
                continue
        out.append(m.group("message") if q.output == "cat" else line)
    if q.lines is not None:
        out = out[-q.lines :] if q.lines else []
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        q = parse_args(list(sys.argv[1:] if argv is None else argv))
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    user = os.environ.get("SANDBOX_USER") or os.environ.get("USER") or "nobody"
    if user != "root":
        if not q.quiet:
            print(NO_ENTRIES)
            print(HINT, file=sys.stderr)
        return 0
    host = os.environ.get("SANDBOX_HOST", "")
    root = Path(os.environ.get("SANDBOX_DIR", "/nonexistent")) / "hosts" / host
    lines: list[str] = []
    if not q.units or UNIT in q.units:
        try:
            lines = HostPaths(root).journal.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
    shown = select(lines, q)
    if not shown:
        if not q.quiet:
            print(NO_ENTRIES)
        return 0
    sys.stdout.write("\n".join(shown) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

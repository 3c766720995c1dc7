"""The `mesos-log` stand-in on a simulated host (`python -m sandbox.mesoslog ARGS`).

Only `initialize` is real (docs/aurora-notes.md §F7): it turns an EMPTY replica into VOTING and
refuses anything else. The files it creates belong to the user it runs as (SANDBOX_USER,
set by the sudo stand-in): a plain `sudo mesos-log initialize` leaves a log owned by root
that the scheduler, running as aurora, cannot open (docs/aurora-notes.md §F7).

It refuses any --path outside the sandbox directory: nothing the sandbox runs may touch
anything outside DIR.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from sandbox import replog
from sandbox.layout import SandboxInfo, inside

COMMANDS = ("help", "benchmark", "initialize", "read", "replica")
DURATION_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|secs|mins|hrs|days|weeks)$")


def usage(prog: str = "mesos-log") -> str:
    lines = [f"Usage: {prog} <command> [OPTIONS]", "", "Available commands:"]
    lines += [f"    {c}" for c in COMMANDS]
    return "\n".join(lines) + "\n"


INITIALIZE_USAGE = """\
Usage: initialize [options]

This command is used to initialize the log

  --[no-]help              Prints this help message (default: false)
  --path=VALUE             Path to the log
  --timeout=VALUE          Maximum time allowed for the command to finish
                           (e.g., 500ms, 1sec, etc.)
"""


class ToolError(Exception):
    """Printed to stderr as it is; the command exits 1."""


def _flags(args: list[str]) -> dict[str, str | bool]:
    """Mesos flags: `--name=value`, booleans as `--name` / `--no-name`."""
    flags: dict[str, str | bool] = {}
    for arg in args:
        if not arg.startswith("--"):
            continue  # Mesos ignores stray words
        name, eq, value = arg[2:].partition("=")
        if name in ("help", "no-help"):
            flags["help"] = name == "help"
        elif name not in ("path", "timeout"):
            raise ToolError(f"Failed to load unknown flag '{name}'\n\n{INITIALIZE_USAGE}")
        elif not eq:
            raise ToolError(
                f"Failed to load non-boolean flag '{name}': Missing value\n\n{INITIALIZE_USAGE}"
            )
        else:
            flags[name] = value
    return flags


def _sandbox_dir() -> str:
    directory = os.environ.get("SANDBOX_DIR")
    if not directory:
        raise ToolError("mesos-log (sandbox): SANDBOX_DIR is not set; refusing to run")
    try:
        return SandboxInfo.load(directory).dir
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(
            f"mesos-log (sandbox): cannot read the sandbox in {directory}: {exc}"
        ) from None


def initialize(args: list[str]) -> None:
    flags = _flags(args)
    if flags.get("help"):
        raise ToolError(INITIALIZE_USAGE)
    timeout = flags.get("timeout")
    if isinstance(timeout, str) and not DURATION_RE.match(timeout):
        raise ToolError(
            f"Failed to load flag 'timeout': Failed to load value '{timeout}': "
            f"Invalid duration '{timeout}'\n\n{INITIALIZE_USAGE}"
        )
    path = flags.get("path")
    if not isinstance(path, str):
        raise ToolError(f"Missing required option --path\n\n{INITIALIZE_USAGE}")
    if not path:
        raise ToolError("Failed to initialize the log: --path is empty")
    directory = _sandbox_dir()
    if not inside(path, directory):
        raise ToolError(
            f"mesos-log (sandbox): refusing to touch {path}: it lies outside the sandbox "
            f"directory {directory}"
        )
    user = os.environ.get("SANDBOX_USER", "root")
    log_dir = Path(path)
    try:
        current = replog.read(log_dir)
    except replog.ReplicaCorrupt as exc:
        raise ToolError(f"Failed to recover the replica: {exc}") from None
    if current.status != "EMPTY" and current.owner not in ("", user) and user != "root":
        raise ToolError(
            f"Failed to recover the replica: IO error: {log_dir}/LOCK: Permission denied"
        )
    try:
        replog.initialize(log_dir, owner=user)
    except replog.ReplicaNotEmpty as exc:
        raise ToolError(str(exc)) from None
    except OSError as exc:
        raise ToolError(f"Failed to recover the replica: IO error: {exc}") from None


def run(argv: list[str]) -> None:
    if not argv:
        raise ToolError(usage())
    command, rest = argv[0], argv[1:]
    if command == "help":
        if not rest:
            sys.stdout.write(usage())
            return
        command, rest = rest[0], ["--help"]  # `mesos-log help cmd` is `cmd --help`
    if command not in COMMANDS or command == "help":
        raise ToolError(f"Cannot find command '{command}'\n\n{usage()}")
    if command != "initialize":
        raise ToolError(f"mesos-log (sandbox): '{command}' is not available in the sandbox")
    initialize(rest)


def main(argv: list[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except ToolError as exc:
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

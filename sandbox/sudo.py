"""The `sudo` stand-in on a simulated host (`python -m sandbox.sudo ARGS`).

It obeys the host's sudoers-like file, `etc/sudoers.d/aurora-ops` (HostPaths.sudoers),
the way sudo obeys /etc/sudoers.d (sudo 1.9, sudoers(5)), for what the runbook uses:

    USER HOST=(RUNAS[, RUNAS]) [NOPASSWD:] COMMAND[, COMMAND]...

- USER is a user name or ALL; HOST is ALL or the host's name; RUNAS is ALL or user names
  (`(ALL:ALL)` is read as `(ALL)`), root when the parentheses are left out;
- COMMAND is ALL, or a full path with optional arguments: the path is matched against
  the command's resolved path, `*` in it matching anything but `/`; arguments in the rule
  must match the command's arguments (`*` matches anything, spaces included); a rule
  without arguments allows any, `""` allows none;
- NOPASSWD: a rule without it needs a password, which nobody can type here.

Options: `-n` (never prompt: a command that would need a password is refused with
`sudo: a password is required`, exit 1), `-u USER`, `-l [COMMAND...]` (with a command:
its resolved path and arguments on stdout and exit 0 when allowed, exit 1 and nothing on
stdout otherwise; without: the rules that apply), and `-E`, `-H`, `-S` (accepted, no
effect). Root (SANDBOX_USER=root) may run anything, like root on a real host.

The command runs with SANDBOX_USER, USER and LOGNAME set to the target user.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from sandbox.layout import HostPaths

PASSWORD_REQUIRED = "sudo: a password is required"
NO_TTY = (
    "sudo: a terminal is required to read the password; either use the -S option to read "
    "from standard input or configure an askpass helper"
)
USAGE = "usage: sudo [-nEHS] [-u user] command [arg ...]\nusage: sudo -l [-n] [-u user] [command [arg ...]]"
RULE_RE = re.compile(
    r"^(?P<user>\S+)\s+(?P<host>[^\s=]+)\s*=\s*(?:\((?P<runas>[^)]*)\)\s*)?"
    r"(?P<tags>(?:(?:NOPASSWD|PASSWD)\s*:\s*)*)(?P<commands>.+)$"
)


@dataclass(frozen=True)
class Rule:
    user: str
    host: str
    runas: tuple[str, ...]
    nopasswd: bool
    commands: tuple[str, ...]
    text: str  # as `sudo -l` shows it

    def applies(self, user: str, host: str) -> bool:
        return self.user in ("ALL", user) and self.host in ("ALL", host)

    def may_run_as(self, target: str) -> bool:
        return "ALL" in self.runas or target in self.runas


def parse_rules(text: str) -> list[Rule]:
    """The rules of a sudoers-like file; comments, blank and unparsable lines are skipped
    (the stand-in never grants more than a line plainly says)."""
    rules = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = RULE_RE.match(line)
        if not line or m is None:
            continue
        runas_text = (m.group("runas") or "root").split(":", 1)[0]
        runas = tuple(r.strip() for r in runas_text.split(",") if r.strip()) or ("root",)
        tags = re.findall(r"NOPASSWD|PASSWD", m.group("tags") or "")
        commands = tuple(c.strip() for c in m.group("commands").split(",") if c.strip())
        shown_tags = "".join(f"{t}: " for t in tags)
        rules.append(
            Rule(
                user=m.group("user"),
                host=m.group("host"),
                runas=runas,
                nopasswd=bool(tags) and tags[-1] == "NOPASSWD",
                commands=commands,
                text=f"({', '.join(runas)}) {shown_tags}{', '.join(commands)}",
            )
        )
    return rules


def command_matches(pattern: str, path: str, args: list[str]) -> bool:
    """sudoers command matching: ALL, or a path (wildcards not crossing `/`) with optional
    arguments (wildcards crossing anything; `""` for none)."""
    if pattern == "ALL":
        return True
    rule_path, _, rule_args = pattern.partition(" ")
    parts_rule, parts_path = rule_path.split("/"), path.split("/")
    if len(parts_rule) != len(parts_path) or not all(
        fnmatchcase(p, r) for p, r in zip(parts_path, parts_rule, strict=True)
    ):
        return False
    rule_args = rule_args.strip()
    if not rule_args:
        return True
    if rule_args == '""':
        return not args
    return fnmatchcase(" ".join(args), rule_args)


def resolve(command: str, path_env: str) -> str | None:
    """The command's full path, as sudo resolves it before matching."""
    if "/" in command:
        return os.path.abspath(command) if os.access(command, os.X_OK) else None
    return shutil.which(command, path=path_env)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    needs_password: bool


def judge(
    rules: list[Rule], user: str, host: str, target: str, path: str, args: list[str]
) -> Verdict:
    """The last matching rule wins, as in sudoers."""
    verdict = Verdict(False, True)
    for rule in rules:
        if not rule.applies(user, host) or not rule.may_run_as(target):
            continue
        if any(command_matches(c, path, args) for c in rule.commands):
            verdict = Verdict(True, not rule.nopasswd)
    return verdict


@dataclass
class Request:
    target: str = "root"
    non_interactive: bool = False
    listing: bool = False
    command: tuple[str, ...] = ()


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> Request:
    req = Request()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg == "-u":
            if i + 1 >= len(argv):
                raise UsageError("sudo: option requires an argument -- 'u'")
            req.target = argv[i + 1]
            i += 2
            continue
        if arg.startswith("-u"):
            req.target = arg[2:]
            i += 1
            continue
        for flag in arg[1:]:
            if flag == "n":
                req.non_interactive = True
            elif flag == "l":
                req.listing = True
            elif flag in "EHS":
                pass
            else:
                raise UsageError(f"sudo: invalid option -- '{flag}'")
        i += 1
    req.command = tuple(argv[i:])
    return req


def _refuse_password(non_interactive: bool) -> int:
    if not non_interactive:
        print(NO_TTY, file=sys.stderr)
    print(PASSWORD_REQUIRED, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        req = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"{exc}\n{USAGE}", file=sys.stderr)
        return 1
    user = os.environ.get("SANDBOX_USER") or os.environ.get("USER") or "nobody"
    host = os.environ.get("SANDBOX_HOST", "")
    path_env = os.environ.get("PATH", "")
    root = Path(os.environ.get("SANDBOX_DIR", "/nonexistent")) / "hosts" / host
    try:
        rules = parse_rules(HostPaths(root).sudoers.read_text())
    except OSError:
        rules = []
    mine = [r for r in rules if r.applies(user, host)]

    if req.listing and not req.command:
        if user != "root" and not mine:
            print(f"Sorry, user {user} may not run sudo on {host}.", file=sys.stderr)
            return 1
        if user != "root" and not any(r.nopasswd for r in mine):
            return _refuse_password(req.non_interactive)
        print(f"User {user} may run the following commands on {host}:")
        for r in (
            mine
            if user != "root"
            else [Rule("root", "ALL", ("ALL",), False, ("ALL",), "(ALL) ALL")]
        ):
            print(f"    {r.text}")
        return 0
    if not req.command:
        print(USAGE, file=sys.stderr)
        return 1

    path = resolve(req.command[0], path_env)
    if path is None:
        print(f"sudo: {req.command[0]}: command not found", file=sys.stderr)
        return 1
    args = list(req.command[1:])
    if user == "root":
        verdict = Verdict(True, False)
    else:
        verdict = judge(rules, user, host, req.target, path, args)
    if req.listing:
        if verdict.allowed and (not verdict.needs_password or any(r.nopasswd for r in mine)):
            print(" ".join([path, *args]))
            return 0
        return 1
    if not verdict.allowed or verdict.needs_password:
        return _refuse_password(req.non_interactive)
    env = dict(os.environ, SANDBOX_USER=req.target, USER=req.target, LOGNAME=req.target)
    try:
        os.execve(path, [req.command[0], *args], env)
    except OSError as exc:
        print(f"sudo: unable to execute {path}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

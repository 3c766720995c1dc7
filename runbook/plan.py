"""The plan a person approves, and the guard that keeps a step to it.

When a step that changes something is offered, the engine renders its plan: per host
the exact commands it will send (`commands`), the read-only commands it may send to
check or to show (`reads`), and for file edits the exact new content with a unified diff
against the file read at that moment (`files`). The plan is stored with its digest; the
card shows it; an approval records the digest. Right before the step runs the plan is
rendered again: if it differs (the leader moved, a file changed on a host, another
backup was chosen) the approval is void and the card asks again.

While the step runs, its remote is a `PlannedRemote`: a command that is not in the plan,
or a file write whose content is not the planned one, is not sent (`PlanViolation`).
Reading a file is `cat -- PATH` (`read_command`), so reads are planned like any command.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.ports import HostResult, OnResult, Remote
from runbook.redact import redact

# Block Kit sections hold 3,000 characters: a diff longer than this goes in a file.
DIFF_CAP = 2500


def read_command(path: str) -> str:
    """The command `Remote.read_file` sends (bot.ssh): planned like any other."""
    return f"cat -- {shlex.quote(path)}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unified_diff(path: str, before: bytes, after: bytes) -> str:
    """A unified diff of a file edit, as text (bytes that are not UTF-8 shown escaped)."""
    a = before.decode(errors="backslashreplace").splitlines(keepends=True)
    b = after.decode(errors="backslashreplace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, f"{path} (now)", f"{path} (after)", n=1)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass
class Plan:
    commands: dict[str, list[str]] = field(default_factory=dict)
    reads: dict[str, list[str]] = field(default_factory=dict)
    # host -> path -> {"before": sha256, "after": sha256, "content": base64, "diff": text}
    files: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def edit(self, host: str, path: str, before: bytes, after: bytes) -> None:
        """A file edit, bound by the sha256 of the content before and after. The content
        itself is not kept (it may hold secrets); the diff is shown with them masked."""
        self.files.setdefault(host, {})[path] = {
            "before": sha256(before),
            "after": sha256(after),
            "diff": redact(unified_diff(path, before, after)),
        }

    def copy(self, host: str, path: str, digest: str, size: int, source: str) -> None:
        """A file copied whole (the backup): bound by its sha256, shown as one line."""
        self.files.setdefault(host, {})[path] = {
            "before": "",
            "after": digest,
            "diff": f"{path}: copied from {source}, sha256 {digest}\n",
        }

    def digest(self) -> str:
        body = {
            "commands": self.commands,
            "reads": self.reads,
            "files": {
                h: {p: (f["before"], f["after"]) for p, f in sorted(edits.items())}
                for h, edits in sorted(self.files.items())
            },
        }
        return sha256(json.dumps(body, sort_keys=True).encode())

    def to_dict(self) -> dict[str, Any]:
        """What is stored in Redis and shown: masked (see `masked`)."""
        shown = self.masked()
        return {
            "commands": shown.commands,
            "reads": shown.reads,
            "files": shown.files,
            "digest": shown.digest(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Plan:
        return cls(
            commands={h: list(c) for h, c in (raw.get("commands") or {}).items()},
            reads={h: list(c) for h, c in (raw.get("reads") or {}).items()},
            files={h: dict(e) for h, e in (raw.get("files") or {}).items()},
        )

    def allowed(self, host: str) -> set[str]:
        return set(self.commands.get(host, [])) | set(self.reads.get(host, []))

    def masked(self) -> Plan:
        """The plan as it is stored and shown: commands with secrets masked (a cluster-file
        template may hold one). The guard compares commands in this form."""
        return Plan(
            commands={h: [redact(c) for c in cs] for h, cs in self.commands.items()},
            reads={h: [redact(c) for c in cs] for h, cs in self.reads.items()},
            files=self.files,
        )

    def differences(self, other: Plan) -> list[str]:
        """What changed between this plan and a newer rendering, one line each."""
        out = []
        for host in sorted(set(self.commands) | set(other.commands)):
            if self.commands.get(host) != other.commands.get(host):
                out.append(f"{host}: the commands changed")
        for host in sorted(set(self.files) | set(other.files)):
            mine, theirs = self.files.get(host, {}), other.files.get(host, {})
            for path in sorted(set(mine) | set(theirs)):
                a, b = mine.get(path), theirs.get(path)
                if a is None or b is None or a["after"] != b["after"] or a["before"] != b["before"]:
                    what = (
                        "changed on the host since it was shown"
                        if a and b and a["before"] != b["before"]
                        else "its new content changed"
                    )
                    out.append(f"{host}: {path}: {what}")
        if not out and self.reads != other.reads:
            out.append("the commands it reads with changed")
        return out


class PlanViolation(Exception):
    """A step tried to send what its approved plan does not hold; nothing was sent."""


class PlannedRemote:
    """A `Remote` that sends only what the plan holds."""

    def __init__(self, inner: Remote, plan: Plan) -> None:
        self.inner = inner
        self.plan = plan

    def _check(self, host: str, command: str, data: bytes | None = None) -> None:
        if redact(command) not in self.plan.allowed(host):
            raise PlanViolation(f"{host}: not in the approved plan, not sent: {command}")
        if data is not None:
            wanted = {f["after"] for f in self.plan.files.get(host, {}).values()}
            if sha256(data) not in wanted:
                raise PlanViolation(
                    f"{host}: the content to write is not the approved one, not sent: {command}"
                )

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        for host, command in commands.items():
            self._check(host, command, (stdin or {}).get(host))
        return await self.inner.run(commands, timeout=timeout, stdin=stdin, on_result=on_result)

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        self._check(host, read_command(path))
        return await self.inner.read_file(host, path, timeout)

    async def close(self) -> None:
        await self.inner.close()

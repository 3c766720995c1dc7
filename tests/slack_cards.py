"""Reading what the bot showed in Slack, from the Slack double's payloads, and what the
sandbox's hosts were asked to run (sandbox.sshd's command log): for the acceptance tests
that hold one to the other (tests/test_slack_commands_recorded.py,
tests/test_slack_thread_lines.py). Only payloads and files are read here, never the
bot's internals: the cards are parsed as a person reads them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.slack_double import SlackDouble
from tests.test_slack_app import AppProcess

# A card's fallback text starts with "<step id> · <title>: <status>" (and so does its header).
_CARD_TEXT = re.compile(r"^(?P<sid>[a-z_]+\.[a-z_]+) · ")
_CODE = re.compile(r"```\n(.*?)\n```", re.S)
_COMMAND_LINE = re.compile(r"^\[([^\]\n]*)\] \$ ", re.M)
_FILE_EDIT = re.compile(r"^\*File edit on (?P<hosts>.*?):\*\n```\n(?P<diff>.*)\n```$", re.S)
# A part of a listing split over sections (bot.blocks.code_parts).
_PART = re.compile(
    r"^\*(?P<title>Commands|It also reads, to check)(?P<more>, continued(?P<same> \(the same line\))?)?:\*\n```\n(?P<body>.*)\n```$",
    re.S,
)
# The card names the file of its whole plan (bot.blocks.plan_file_note).
_PLAN_FILE = re.compile(
    r"the full commands are in `(?P<name>[^`]+)` \(sha256 `(?P<sha>[0-9a-f]{64})`\)"
)


def unescape(text: str) -> str:
    """What a person reads: mrkdwn's three entities, and the code fences the card broke
    with a zero-width space, undone."""
    text = text.replace("`\u200b``", "```")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def block_texts(blocks: list[dict[str, Any]] | None) -> list[str]:
    """The mrkdwn/plain text of every section, header and context block, in order."""
    out: list[str] = []
    for b in blocks or []:
        text = b.get("text")
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            out.append(text["text"])
        for e in b.get("elements") or []:
            if isinstance(e, dict) and e.get("type") in ("mrkdwn", "plain_text"):
                out.append(str(e.get("text", "")))
    return out


def card_step(payload: dict[str, Any]) -> str | None:
    """The step a chat.postMessage/chat.update payload is the card of, else None."""
    m = _CARD_TEXT.match(str(payload.get("text") or ""))
    return m.group("sid") if m else None


@dataclass
class Shown:
    """What the cards of one step showed: the code blocks of its commands and of what it
    also reads (a command may span lines), its file diffs, and whether it is read-only."""

    commands: list[str] = field(default_factory=list)  # "[hosts] $ command" lines
    reads: list[str] = field(default_factory=list)
    diffs: list[tuple[set[str], str]] = field(default_factory=list)  # (hosts, diff text)
    texts: list[str] = field(default_factory=list)
    read_only: bool = False

    files: list[str] = field(default_factory=list)  # the plan files the card named, as posted
    named: list[str] = field(default_factory=list)  # the plan files' names

    def has(self, host: str, command: str) -> bool:
        """`command` was shown whole, as whole lines, for `host` (or every target), on
        the card or in the plan file it named."""
        if any(f"\n{command}\n" in f"\n{body}\n" for body in self.reads):
            return True
        if any(f"\n[{host}] $ {command}\n" in text for text in self.files):
            return True
        if any(
            f"\n{command}\n" in _section(text, "It also reads, to check") for text in self.files
        ):
            return True
        for body in self.commands:
            for label in _COMMAND_LINE.findall(body):
                hosts = {h.strip() for h in label.split(",")}
                if not (label.startswith("every target (") or host in hosts):
                    continue
                if f"\n[{label}] $ {command}\n" in f"\n{body}\n":
                    return True
        return False

    def clipped(self, command: str) -> bool:
        """`command` was shown cut short: its beginning, then "…" before its end."""
        head = command.split("\n")[0][:80]
        for body in self.reads + self.commands:
            at = body.find(head)
            if at >= 0 and "…" in body[at : at + len(command) + 1]:
                return True
        return False

    def add(self, blocks: list[dict[str, Any]] | None, posted: dict[str, str]) -> None:
        """One payload's blocks; `posted`: the files in the thread by then, by name."""
        commands: list[str] = []  # raw (escaped) bodies, parts joined
        reads: list[str] = []
        last: list[str] | None = None
        for raw in block_texts(blocks):
            self.texts.append(raw)
            if raw.startswith("*") and "read-only" in raw:
                self.read_only = True
            named = _PLAN_FILE.search(raw)
            if named:
                self.named.append(named.group("name"))
                text = posted.get(named.group("name"))
                if text is not None and hashlib.sha256(text.encode()).hexdigest() == named.group(
                    "sha"
                ):
                    self.files.append("\n" + text)
                    self.diffs += _file_diffs(text)
            edit = _FILE_EDIT.match(raw)
            if edit:
                hosts = {h.strip().strip("`") for h in edit.group("hosts").split(",")}
                self.diffs.append((hosts, unescape(edit.group("diff"))))
                continue
            part = _PART.match(raw)
            if part is None:
                continue
            into = commands if part.group("title") == "Commands" else reads
            if part.group("more") and last is into and into:
                # The raw (escaped) bodies are joined, then read as a person reads them.
                joint = "" if part.group("same") else "\n"
                into[-1] = into[-1] + joint + part.group("body")
            else:
                into.append(part.group("body"))
            last = into
        self.commands += [unescape(b) for b in commands]
        self.reads += [unescape(b) for b in reads]


def _section(text: str, title: str) -> str:
    """One "===== title" section of a plan file, with a line break before and after."""
    at = text.find(f"\n===== {title}\n")
    if at < 0:
        return ""
    body = text[at + len(title) + 8 :]
    end = body.find("\n===== ")
    return "\n" + (body if end < 0 else body[: end + 1])


def _file_diffs(text: str) -> list[tuple[set[str], str]]:
    """The file edits of a plan file (bot.blocks.plan_text): (hosts, diff)."""
    out = []
    for m in re.finditer(
        r"^===== File edit on (?P<hosts>[^\n]*):\n(?P<diff>.*?)(?=^===== |\Z)", text, re.M | re.S
    ):
        hosts = {h.strip() for h in m.group("hosts").split(",")}
        out.append((hosts, m.group("diff").removesuffix("\n")))
    return out


def shown_by_step(double: SlackDouble, upto: int | None = None) -> dict[str, Shown]:
    """Every card payload the bot sent (chat.postMessage and chat.update), the first
    `upto` calls only when given, folded per step."""
    out: dict[str, Shown] = {}
    posted: dict[str, str] = {}  # the files completed so far, by name
    for method, params in double.calls[:upto]:
        if method == "files.completeUploadExternal":
            for item in params.get("files") or []:
                stored = double.uploads.get(str(item.get("id"))) if isinstance(item, dict) else None
                if stored is not None and stored.content is not None:
                    posted[stored.name] = stored.text
            continue
        if method not in ("chat.postMessage", "chat.update"):
            continue
        sid = card_step(params)
        if sid is None:
            continue
        blocks = params.get("blocks")
        out.setdefault(sid, Shown()).add(blocks if isinstance(blocks, list) else None, posted)
    return out


def sent_commands(sandbox_dir: Path) -> list[dict[str, Any]]:
    """Every exec request the sandbox's SSH servers got, in order:
    `{"host", "command", "at"}` (sandbox.layout.SandboxInfo.commands_file)."""
    path = sandbox_dir / "ssh/commands.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def thread_lines(double: SlackDouble, channel: str, root_ts: str) -> list[str]:
    """The thread's replies that are not cards (the one-line messages), oldest first."""
    return [
        str(m.get("text", ""))
        for m in double.messages(channel=channel, thread_ts=root_ts)
        if m["ts"] != root_ts and card_step(m) is None
    ]


def card_now(double: SlackDouble, channel: str, root_ts: str, sid: str) -> dict[str, Any] | None:
    """The card of `sid` as it is in the thread now."""
    for m in double.messages(channel=channel, thread_ts=root_ts):
        if m["ts"] != root_ts and card_step(m) == sid:
            return m
    return None


def apply_diff(old: str, diff: str) -> str:
    """`old` with a unified diff applied, strictly: every context and removed line must
    be where its hunk says, or AssertionError (the diff does not describe `old`)."""
    lines = old.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    parts = re.split(r"^(@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@.*)$", diff, flags=re.M)
    for head, body in zip(parts[1::2], parts[2::2], strict=True):
        m = re.match(r"@@ -(\d+)(?:,(\d+))?", head)
        assert m, head
        start = int(m.group(1)) - (0 if m.group(2) == "0" else 1)
        assert start >= pos, head
        out += lines[pos:start]
        pos = start
        previous = ""
        for line in body.split("\n")[1:]:
            if line.startswith("\\"):  # "\ No newline at end of file"
                if previous == "+":
                    out[-1] = out[-1].removesuffix("\n")
                continue
            if not line:
                continue  # the end of the text (an empty line of the file is " ")
            tag, text = line[0], line[1:]
            if tag in " -":
                assert pos < len(lines) and lines[pos].removesuffix("\n") == text, (pos, line)
                if tag == " ":
                    out.append(lines[pos])
                pos += 1
            elif tag == "+":
                out.append(text + "\n")
            else:
                raise AssertionError(f"not a line of a diff: {line!r}")
            previous = tag
    return "".join(out + lines[pos:])


class PatientApp(AppProcess):
    """`aurora-restore serve`, waited for longer: a bot started after one died runs the
    interrupted steps' checks (over SSH) before it listens, and a loaded machine is
    slow to start any (no timing is asserted; only the wait is longer)."""

    async def start(self) -> AppProcess:
        try:
            return await super().start()
        except AssertionError:
            pass  # still starting: wait longer for /healthz
        async with httpx.AsyncClient() as client:
            for _ in range(120):
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                    if r.status_code == 200:
                        return self
                await asyncio.sleep(0.5)
        raise AssertionError("the app did not start (waited a minute more)")

"""Secrets out of everything stored: command outputs, commands, summaries.

Redaction happens before anything reaches Redis, a message, a log line or a transcript.
Extra patterns come from the environment (AURORA_RESTORE_REDACT, one regex per line).
"""

from __future__ import annotations

import os
import re

MASK = "[REDACTED]"

_PATTERNS = [
    # PEM private keys, whole blocks.
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
    # Slack tokens and signing-secret-like values.
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\bxapp-[A-Za-z0-9-]{10,}",
    # AWS access keys.
    r"\bAKIA[0-9A-Z]{16}\b",
    # Authorization headers.
    r"(?i)(authorization:\s*(?:basic|bearer|negotiate)\s+)[^\s]+",
    # password=..., token: ..., secret=... (keeps the name, hides the value).
    r"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*)[^\s'\"]+",
    # URLs with credentials.
    r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)",
]


def _compiled() -> list[re.Pattern[str]]:
    extra = [p for p in os.environ.get("AURORA_RESTORE_REDACT", "").splitlines() if p.strip()]
    return [re.compile(p) for p in _PATTERNS + extra]


def redact(text: str) -> str:
    for pattern in _compiled():
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        else:
            text = pattern.sub(MASK, text)
    return text


def cap(text: str, limit: int) -> tuple[str, bool]:
    """The tail of text within `limit` bytes (the end of an output matters most)."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return "…[truncated]\n" + data[-limit:].decode(errors="ignore"), True

"""Waiting approvals: who is waited for, since when, when to remind, when it is too late.

Pure rules over a restore's record and its events (no clock, no Redis, no Slack): the
bot's reminder loop (`bot.reminders`) and the engine's `approve()` call them with the
time they read.

A step waits from the event that made it wait: its last `awaiting_approval` event (a
step that asks again after an expired approval waits afresh). An approval given long
after the step's preview was gathered would run against a cluster that may have moved
on, so after `approvals.expire_after` it is refused and the step asks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runbook.state import RestoreStatus, StepStatus
from runbook.store import RestoreRecord


def waiting_for(
    rec: RestoreRecord, events: Iterable[dict[str, Any]] | None = None
) -> list[tuple[str, int]]:
    """The steps of a running restore that wait for approval, in plan order, each with
    the time (ms, the store's clock) it began waiting: the `at` of its last
    `awaiting_approval` event; without the events, or without such an event, the
    step's `awaiting_since` when the store stamps it, else the time of its last
    transition (`updated_at`, which a refusal also moves)."""
    if rec.status != RestoreStatus.RUNNING:
        return []
    since: dict[str, int] = {}
    for e in events or ():
        if e.get("type") == "awaiting_approval" and e.get("step"):
            since[str(e["step"])] = int(e["at"])
    out = []
    for sid in rec.meta.get("plan", []):
        state = rec.steps.get(sid, {})
        if state.get("status") != StepStatus.AWAITING:
            continue
        fallback = state.get("awaiting_since", state.get("updated_at", 0))
        out.append((sid, since.get(sid, int(fallback))))
    return out


def interval_number(now_ms: int, since_ms: int, remind_after_ms: int) -> int:
    """How many whole `remind_after` intervals a step has waited (0: not yet due)."""
    if remind_after_ms <= 0 or now_ms < since_ms:
        return 0
    return (now_ms - since_ms) // remind_after_ms


def reminder_due(
    now_ms: int, since_ms: int, last_reminded_ms: int | None, remind_after_ms: int
) -> bool:
    """A reminder is due once the step has waited `remind_after`, and again every
    `remind_after` after that: once per interval, never twice in one."""
    current = interval_number(now_ms, since_ms, remind_after_ms)
    if current == 0:
        return False
    if last_reminded_ms is None or last_reminded_ms < since_ms:
        return True
    return interval_number(last_reminded_ms, since_ms, remind_after_ms) < current


def duration_text(ms: int) -> str:
    """`45s`, `12m`, `1h 12m`, `2d 3h`: the largest two units, whole."""
    seconds = max(0, ms // 1000)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def waited_text(since_ms: int, now_ms: int) -> str:
    """For a card: `waiting for approval for 12m`."""
    return f"waiting for approval for {duration_text(now_ms - since_ms)}"


def expired(since_ms: int, now_ms: int, expire_after_ms: int, expire_after: str = "") -> str | None:
    """None while an approval may still be given; else the refusal, one line:
    `this step has waited 1h 12m for approval (longer than approvals.expire_after = 1h):
    its checks run again and it asks again`. `since_ms` is when the step began waiting
    (`waiting_for`); `expire_after` is the setting as written, for the text."""
    waited = now_ms - since_ms
    if expire_after_ms <= 0 or waited <= expire_after_ms:
        return None
    setting = expire_after or duration_text(expire_after_ms)
    return (
        f"this step has waited {duration_text(waited)} for approval (longer than "
        f"approvals.expire_after = {setting}): its checks run again and it asks again"
    )

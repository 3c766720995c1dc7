"""The transcript of a restore, built from its record and append-only event log.

JSON schema: `runbook/transcript.schema.json` (`schema` = "aurora-restore/transcript/2";
version 1 is still read and verified). Tamper evidence: every event of the log carries
the hash of the one before it (`hash = sha256(prev + body)`, where the first event's
`prev` is the restore's key `ar:restore:<rid>`, see `runbook.store.PRELUDE`); version-1
logs used `sha1(prev + body)` from an empty `prev` ("SHA-1 chain (older format)"). The
export carries the log and its final digest, and `verify()` checks the chain, then
rebuilds every field it can from the log alone and compares.

How each event type reads is a table (`EVENTS`): a type missing from it still shows,
generically, with its fields, rather than vanishing.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook.events import EventKind as K
from runbook.state import RestoreStatus as R, StepStatus
from runbook.step import Procedure, Role
from runbook.store import RestoreRecord, output_digest, parse_result_key, restore_key

SCHEMA = "aurora-restore/transcript/2"
OLD_SCHEMA = "aurora-restore/transcript/1"
SCHEMAS = (SCHEMA, OLD_SCHEMA)


def _ts(ms: Any) -> str | None:
    if not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _secs(start: Any, end: Any) -> float | None:
    if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
        return round((end - start) / 1000, 3)
    return None


# -- how events read ------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How one event type reads: `text` is a template over the event's fields (and the
    derived ones of `_fields`), `detail` the field quoted under it, `marker` the
    timeline marker it gets (abort, interruption, retry, refusal, ending)."""

    text: str
    detail: tuple[str, ...] = ()
    marker: str | None = None


# Keyed by the one event vocabulary (runbook.events.EventKind); a kind of the log missing
# here (none today: tests/test_events.py checks) still reads generically.
EVENTS: dict[str, Kind] = {
    K.RESTORE_STARTED: Kind("{who} started the restore of {cluster} (backup: {backup_or_newest})"),
    K.AWAITING_APPROVAL: Kind("waiting for approval ({risk})"),
    K.APPROVED: Kind("approved by {who}; running (attempt {attempt_no}){plan_text}"),
    K.PLAN_CHANGED: Kind(
        "the approval by {who} was void: the plan changed since the card was shown",
        ("reason",),
        marker="refusal",
    ),
    K.APPROVAL_EXPIRED: Kind(
        "the approval by {who} came too late: the step asks again", ("reason",), marker="refusal"
    ),
    K.STARTED: Kind("started by the bot"),
    K.HOST_RESULT: Kind(
        "{host}: exit {exit_status} in {duration}s (attempt {attempt}){error_text}"
    ),
    K.SUCCEEDED: Kind("succeeded", ("summary",)),
    K.FAILED: Kind("failed{by_text}", ("summary", "reason")),
    K.SKIPPED: Kind("skipped by {who}", ("reason",)),
    K.NOT_NEEDED: Kind("not needed (its condition does not hold)"),
    K.REFUSED: Kind("refused to run for {who}", ("reason",), marker="refusal"),
    K.RETRIED: Kind("retried by {who} (attempt {attempt_no})", marker="retry"),
    K.MARKED_DONE: Kind("marked done by {who}"),
    K.INTERRUPTED: Kind(
        "interrupted: its worker {worker} stopped renewing its lease (it died)",
        marker="interruption",
    ),
    K.CHECKED: Kind("the check after the interruption: {verdict}", ("summary",)),
    K.REWOUND: Kind("{who} went back to this step", ("reason",)),
    K.RESET: Kind("reset by {who}", ("reason",)),
    K.BACKUP_CHOSEN: Kind("{who} chose backup {backup}", ("reason",)),
    K.DELETING_TASKS: Kind("{who} is deleting recovery tasks", ("ids",)),
    K.TASKS_DELETED: Kind("tasks deleted (listing {before} → {after})", ("summary",)),
    # The engine records no reason for an abort yet; one would show as its detail.
    K.ABORTED: Kind("ABORTED by {who} at {at_step}, {revert_text}", ("reason",), marker="abort"),
    K.HELD_STOPPED: Kind(
        "abort ended: schedulers held stopped (log wiped, backup not committed)",
        ("summary",),
        marker="ending",
    ),
    K.ABORT_DONE: Kind("abort ended: nothing was reverted", ("summary",), marker="ending"),
    K.REVERTED: Kind("abort ended: reverted", ("summary",), marker="ending"),
    K.REVERT_FAILED: Kind("abort ended: the revert FAILED", ("summary",), marker="ending"),
    K.PUTTING_BACK: Kind("{who} is putting the old log back", marker="ending"),
    K.LOG_PUT_BACK: Kind("the old log was put back", ("summary",), marker="ending"),
    K.PUT_BACK_FAILED: Kind("putting the old log back FAILED", ("summary",), marker="ending"),
    K.RESTORE_SUCCEEDED: Kind("the restore succeeded", marker="ending"),
    K.RESTORE_FAILED: Kind("the restore failed", ("reason",), marker="ending"),
}
# Fields of every event that are bookkeeping, not content (generic reading skips them).
_PLUMBING = {"type", "at", "seq", "prev", "step", "actor", "hash", "raw", "commands"}
# Events that start a run of a step, and end one.
RUN_STARTS = (K.APPROVED, K.STARTED, K.RETRIED, K.DELETING_TASKS)
RUN_ENDS = (K.SUCCEEDED, K.FAILED, K.SKIPPED, K.MARKED_DONE, K.INTERRUPTED, K.TASKS_DELETED)
# Events after which the engine's `current` names their step (restore_patch current).
_SETS_CURRENT = (K.AWAITING_APPROVAL, K.APPROVED, K.STARTED, K.RETRIED, K.DELETING_TASKS)
# How the restore's status follows its restore-level events.
OUTCOMES = {
    K.RESTORE_STARTED: R.RUNNING,
    K.ABORTED: R.ABORTED,
    K.HELD_STOPPED: R.ABORTED,
    K.ABORT_DONE: R.ABORTED,
    K.REVERTED: R.REVERTED,
    K.REVERT_FAILED: R.ABORTED,
    K.PUTTING_BACK: R.PUTTING_BACK,
    K.LOG_PUT_BACK: R.REVERTED,
    K.PUT_BACK_FAILED: R.ABORTED,
    K.RESTORE_SUCCEEDED: R.SUCCEEDED,
    K.RESTORE_FAILED: R.FAILED,
}
ABORT_ENDINGS = (K.HELD_STOPPED, K.ABORT_DONE, K.REVERTED, K.REVERT_FAILED)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _fields(e: dict[str, Any], current: str | None, attempt: int | None) -> _Blank:
    f = _Blank({k: v for k, v in e.items() if v is not None})
    f["who"] = e.get("actor") or "the bot"
    f["at_step"] = current or "no step"
    f["attempt_no"] = attempt if attempt is not None else "?"
    f["revert_text"] = "asking for the revert" if e.get("revert") else "without revert"
    f["verdict"] = (
        "it appears finished" if e.get("appears_finished") else "it does not appear finished"
    )
    f["backup_or_newest"] = e.get("backup") or "the newest"
    f["error_text"] = f" — {e['error']}" if e.get("error") else ""
    f["plan_text"] = f", plan {str(e['plan_digest'])[:12]}" if e.get("plan_digest") else ""
    f["by_text"] = f" ({e['actor']})" if e.get("actor") and e.get("actor") != "bot" else ""
    return f


def reading(e: dict[str, Any], current: str | None = None, attempt: int | None = None) -> str:
    """One line saying what an event was; an unknown type reads as its name and fields."""
    kind = EVENTS.get(str(e.get("type")))
    if kind is None:
        extra = ", ".join(
            f"{k} {v}"
            for k, v in sorted(e.items())
            if k not in _PLUMBING and isinstance(v, str | int | float | bool)
        )
        who = f" ({e['actor']})" if e.get("actor") else ""
        return f"{str(e.get('type')).replace('_', ' ')}{who}" + (f": {extra}" if extra else "")
    return string.Formatter().vformat(kind.text, (), _fields(e, current, attempt))


def detail_of(e: dict[str, Any]) -> str | None:
    """The text quoted under an event (a summary, a reason, ids), when it has one."""
    kind = EVENTS.get(str(e.get("type")))
    keys = kind.detail if kind else ("summary", "reason")
    for key in keys:
        value = e.get(key)
        if value:
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return None


def marker_of(e: dict[str, Any]) -> str | None:
    kind = EVENTS.get(str(e.get("type")))
    return kind.marker if kind else None


# -- what the log says ------------------------------------------------------------------


def record(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event but the per-host results (those are under the steps' hosts), in
    order, each with its reading; a restore-level event names the step that was current."""
    out = []
    current: str | None = None
    attempts: dict[str, int] = {}
    for e in bodies:
        t = e.get("type")
        sid = e.get("step")
        if sid and t in ("approved", "retried", "deleting_tasks"):
            attempts[sid] = attempts.get(sid, 0) + 1
        elif sid and t == "started":
            attempts[sid] = 1
        if sid and t in _SETS_CURRENT:
            current = sid
        if t in ("restore_succeeded", "restore_failed"):
            current = None
        if t == "host_result":
            continue
        entry: dict[str, Any] = {
            "seq": e.get("seq"),
            "type": t,
            "at": _ts(e.get("at")),
            "step": sid,
            "actor": e.get("actor"),
            "text": reading(e, current, attempts.get(sid) if sid else None),
        }
        if not sid:
            entry["current_step"] = current
        detail = detail_of(e)
        if detail:
            entry["detail"] = detail
        marker = marker_of(e)
        if marker:
            entry["marker"] = marker
        out.append(entry)
    return out


def abort_of(bodies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Who aborted, when, at which step, asking for a revert or not, and how it ended."""
    rec = record(bodies)
    started = next((r for r in rec if r["type"] == K.ABORTED), None)
    if started is None:
        return None
    body = next(b for b in bodies if b.get("type") == K.ABORTED)
    ending = next((r for r in rec if r["type"] in ABORT_ENDINGS), None)
    back = [r for r in rec if r["type"] in ("putting_back", "log_put_back", "put_back_failed")]
    return {
        "by": started["actor"],
        "at": started["at"],
        "step": started.get("current_step"),
        "revert": bool(body.get("revert")),
        "ending": ending["type"] if ending else None,
        "ended_at": ending["at"] if ending else None,
        "summary": ending.get("detail") if ending else None,
        "put_back": [
            {"type": r["type"], "at": r["at"], "actor": r["actor"], "summary": r.get("detail")}
            for r in back
        ],
    }


def step_timing(evs: list[dict[str, Any]]) -> dict[str, Any]:
    """A step's runs (start, end, who), its waits for approval, and the totals, from its
    events: a run starts at an approval, a start, a retry or a deletion, and ends at the
    next succeeded/failed/skipped/marked done/interrupted/tasks deleted."""
    runs: list[dict[str, Any]] = []
    waits: list[tuple[Any, Any]] = []
    waiting_from: Any = None
    open_run: dict[str, Any] | None = None
    for e in evs:
        t, at = e.get("type"), e.get("at")
        if t == "awaiting_approval" and waiting_from is None:
            waiting_from = at
        if t in RUN_STARTS and open_run is None:
            if waiting_from is not None and t in ("approved", "deleting_tasks"):
                waits.append((waiting_from, at))
            waiting_from = None
            open_run = {"start": at, "by": e.get("actor"), "type": t}
        elif t in RUN_ENDS and open_run is not None:
            open_run["end"], open_run["how"] = at, t
            runs.append(open_run)
            open_run = None
        if t in (K.SKIPPED, K.REWOUND, K.RESET, K.BACKUP_CHOSEN):
            if waiting_from is not None and t == K.SKIPPED:
                waits.append((waiting_from, at))
            waiting_from = None
    if open_run is not None:
        runs.append({**open_run, "end": None, "how": None})
    first_wait = next((e.get("at") for e in evs if e.get("type") == K.AWAITING_APPROVAL), None)
    ended = next((e.get("at") for e in reversed(evs) if e.get("type") in RUN_ENDS), None)
    begun = runs[0]["start"] if runs else None
    waited = [_secs(a, b) for a, b in waits]
    ran = [_secs(r["start"], r["end"]) for r in runs]
    return {
        "awaiting_at": _ts(first_wait),
        "started_at": _ts(begun),
        "ended_at": _ts(ended) if begun is not None else None,
        "waiting_seconds": round(sum(w for w in waited if w is not None), 3) if waits else None,
        "running_seconds": (
            round(sum(r for r in ran if r is not None), 3)
            if runs and all(r is not None for r in ran)
            else None
        ),
        "runs": [
            {
                "start": _ts(r["start"]),
                "end": _ts(r["end"]),
                "seconds": _secs(r["start"], r["end"]),
                "by": r["by"],
                "how": r["how"],
            }
            for r in runs
        ],
    }


def _step_events(evs: list[dict[str, Any]], rec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_seq = {r["seq"]: r for r in rec}
    out = []
    for e in evs:
        r = by_seq.get(e.get("seq"))
        entry: dict[str, Any] = {"type": e["type"], "at": _ts(e.get("at")), "actor": e.get("actor")}
        if r is not None:
            entry["text"] = r["text"]
            for key in ("detail", "marker"):
                if key in r:
                    entry[key] = r[key]
        else:  # a host result
            entry["text"] = reading(e)
        out.append(entry)
    return out


def _latest_hosts(
    sid: str, evs: list[dict[str, Any]], outputs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per host, the output of its latest attempt that the log holds a result of."""
    logged = {(e.get("host"), e.get("attempt")) for e in evs if e.get("type") == K.HOST_RESULT}
    hosts: dict[str, dict[str, Any]] = {}
    for key, out in outputs.items():
        step, n, host = parse_result_key(key)
        if step != sid:
            continue
        if logged and (host, n) not in logged:
            continue
        if host not in hosts or hosts[host]["attempt"] < n:
            hosts[host] = {"attempt": n, **out}
    return hosts


def build(
    rec: RestoreRecord,
    events: list[dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    procedure: Procedure,
) -> dict[str, Any]:
    """The transcript of `rec`, which follows `procedure` (the engine's procedure_of)."""
    rec_log = record(events)
    steps = []
    for step in procedure:
        st = rec.steps.get(step.id, {})
        in_plan = step.id in rec.meta["plan"]
        if not in_plan and st.get("reason") == "not needed":
            status = StepStatus.NOT_NEEDED
        else:
            status = st.get("status", StepStatus.PENDING)
        evs = [e for e in events if e.get("step") == step.id]
        steps.append(
            {
                "id": step.id,
                "title": step.title,
                "phase": step.phase,
                "risk": step.risk.value,
                "status": status,
                "summary": st.get("summary", st.get("reason", "")),
                "check": step.check,
                # Lua's cjson writes an empty list as {}.
                "commands": st.get("commands") or [],
                "approved_by": st.get("approved_by"),
                "skipped_by": st.get("skipped_by"),
                "retried_by": st.get("retried_by"),
                "marked_done_by": st.get("marked_done_by"),
                "attempts": st.get("attempt", 0),
                "actors": _actors(evs),
                "events": _step_events(evs, rec_log),
                "hosts": _latest_hosts(step.id, evs, outputs),
                **step_timing(evs),
            }
        )
    data = rec.data
    return {
        "schema": SCHEMA,
        "chain": "sha256",
        "restore": rec.rid,
        "procedure": procedure.name,
        "procedure_version": rec.meta.get("procedure_version"),
        "cluster": rec.meta["cluster"],
        "backup": data.get("backup"),
        "backup_age_seconds": data.get("backup_age"),
        "started_by": rec.meta.get("started_by"),
        "started_at": _ts(rec.meta.get("started_at")),
        "ended_at": _ts(events[-1].get("at")) if events else None,
        "outcome": rec.status,
        "leader": data.get("leader"),
        "reviewed_tasks": data.get("reviewed_count"),
        "leader_table": data.get("leader_table"),
        "preflight_leader_table": data.get("preflight_table"),
        "failover_leader_table": data.get("failover_table"),
        "review": {k: v for k, v in (data.get("review") or {}).items() if k != "listing"} or None,
        "backup_age_acknowledged_by": _acknowledged_by(events, procedure),
        "kills": kills_of(data),
        "abort": abort_of(events),
        "chain_digest": events[-1]["hash"] if events else None,
        "record": rec_log,
        "steps": steps,
        # The event log itself: the exact text each hash covers, so that the export can be
        # checked on its own (`aurora-restore verify-transcript`).
        "log": [{"body": e.get("raw", ""), "hash": e["hash"]} for e in events],
    }


def _actors(evs: list[dict[str, Any]]) -> list[str]:
    return sorted({e["actor"] for e in evs if e.get("actor") and e["actor"] != "bot"})


def _acknowledged_by(events: list[dict[str, Any]], procedure: Procedure) -> Any:
    """Who approved the acknowledgement of the backup's age (Role.ACK_BACKUP)."""
    acks = {s.id for s in procedure.by_role(Role.ACK_BACKUP)}
    return next(
        (e.get("actor") for e in events if e.get("step") in acks and e["type"] == K.APPROVED),
        None,
    )


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


# -- Markdown -------------------------------------------------------------------------


def clock(ts: Any) -> str:
    """An ISO time as "HH:MM:SS.mmm UTC" (the date is in the header)."""
    if not isinstance(ts, str) or "T" not in ts:
        return "-"
    return ts.split("T", 1)[1][:12] + " UTC"


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _seconds(value: Any) -> str:
    return f"{value:.3f}s" if isinstance(value, int | float) else "-"


def _abort_lines(doc: dict[str, Any]) -> list[str]:
    ab = doc.get("abort")
    if not ab:
        return []
    lines = [
        "## Abort",
        "",
        f"- aborted by **{ab['by']}** at {ab['at']}, while **{ab['step'] or 'no step'}** was "
        f"the current step; {'a revert was asked for' if ab['revert'] else 'no revert was asked for'}",
    ]
    if ab.get("ending"):
        lines.append(
            f"- how it ended: **{ab['ending'].replace('_', ' ')}** at {ab['ended_at']}"
            + (" — what was and was not reverted, per host:" if ab.get("summary") else "")
        )
        if ab.get("summary"):
            lines += ["", *fence(ab["summary"]), ""]
    else:
        lines.append("- the abort has not ended yet")
    for back in ab.get("put_back") or []:
        lines.append(
            f"- {back['at']} {back.get('actor') or 'the bot'}: {back['type'].replace('_', ' ')}"
        )
        if back.get("summary"):
            lines += ["", *fence(back["summary"]), ""]
    lines.append("")
    return lines


def where_of(r: dict[str, Any]) -> str:
    """Where a record entry happened: its step, or the restore and the step then current."""
    if r.get("step"):
        return str(r["step"])
    return f"restore (at {r['current_step']})" if r.get("current_step") else "restore"


# Details the record leaves to the step (its summary) or to the Abort section.
_DETAIL_ELSEWHERE = (K.SUCCEEDED, *ABORT_ENDINGS, K.LOG_PUT_BACK, K.PUT_BACK_FAILED)


def _record_lines(doc: dict[str, Any]) -> list[str]:
    lines = ["## Record", ""]
    for r in doc.get("record") or []:
        if r.get("type") in ("awaiting_approval",):
            continue  # the per-step timings say it
        where = where_of(r)
        detail = r.get("detail") if r.get("type") not in _DETAIL_ELSEWHERE else None
        lines.append(
            f"- {clock(r.get('at'))} · {where} · {r['text']}"
            + (f": {_inline(detail)}" if detail else "")
        )
    lines.append("")
    return lines


def kills_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The kills preflight forecast (runbook.preflight) and cleanup.verify saw."""
    forecast = data.get("kills") or {}
    if not forecast:
        return None
    seen = data.get("kills_observed") or {}
    return {
        "predicted": forecast.get("predicted") if forecast.get("known") else None,
        "observed": seen.get("observed"),
        "forecast": forecast.get("summary") if forecast.get("known") else forecast.get("why"),
        "predicted_ids": forecast.get("ids") or [],
        "observed_ids": seen.get("ids") or [],
        "unforecast_ids": seen.get("unforecast") or [],
    }


def _kills_line(doc: dict[str, Any]) -> list[str]:
    kills = doc.get("kills")
    if not kills:
        return []
    return [
        f"- kills: forecast {_dash(kills.get('predicted'))} ({kills.get('forecast') or '-'}); "
        f"observed {_dash(kills.get('observed'))}"
    ]


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Restore {doc['restore']} of cluster `{doc['cluster']}`",
        "",
        f"- backup: `{doc['backup']}`"
        + (
            f" ({doc['backup_age_seconds'] / 3600:.1f} hours old)"
            if doc.get("backup_age_seconds")
            else ""
        ),
        f"- started by {doc['started_by']} at {doc['started_at']}; ended {doc['ended_at']}",
        f"- outcome: **{doc['outcome']}**",
        f"- reviewed tasks: {_dash(doc.get('reviewed_tasks'))}; leader: {_dash(doc.get('leader'))}",
        *_kills_line(doc),
        f"- event chain digest ({chain_name(doc)}): `{doc['chain_digest']}`",
        "",
        *_abort_lines(doc),
        *_record_lines(doc),
    ]
    for s in doc["steps"]:
        lines += _step_lines(s)
    return "\n".join(lines)


def _step_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        f"## {s['id']} — {s['title']}",
        "",
        f"{s['status']} · {s['risk']} · check: {s.get('check') or '-'}",
    ]
    if s["status"] == StepStatus.AWAITING and s.get("awaiting_at") and not s.get("started_at"):
        lines.append(f"waiting for approval since {clock(s['awaiting_at'])}")
    elif s.get("started_at") or s.get("awaiting_at"):
        lines.append(
            f"started {clock(s.get('started_at'))} · waited for approval "
            f"{_seconds(s.get('waiting_seconds'))} · ran {_seconds(s.get('running_seconds'))}"
            + (f" in {len(s['runs'])} runs" if len(s.get("runs") or []) > 1 else "")
        )
    who = [
        f"{label} {s[key]}"
        for key, label in (
            ("approved_by", "approved by"),
            ("skipped_by", "skipped by"),
            ("retried_by", "retried by"),
            ("marked_done_by", "marked done by"),
        )
        if s.get(key)
    ]
    if who:
        lines.append("; ".join(who))
    if s["summary"]:
        # The summary quotes what hosts said (log lines, outputs): kept inert.
        lines += ["", *fence(s["summary"])]
    shown = [e for e in s["events"] if e["type"] not in (K.HOST_RESULT, K.SUCCEEDED)]
    if shown:
        lines.append("")
        for e in shown:
            lines.append(f"- {e['at']} {e.get('text') or e['type']}")
            if e.get("detail") and e["detail"] != s["summary"]:  # the summary is above
                lines.append(f"  {_inline(e['detail'])}")
    for batch in s["commands"]:
        lines += ["", *fence("\n".join(f"[{h}] $ {c}" for h, c in batch.items()), "sh")]
    for host, out in sorted(s["hosts"].items()):
        lines += [
            "",
            f"**{host}**: exit {out.get('exit_status')} in {out.get('duration')}s"
            + f" (attempt {out.get('attempt')})"
            + (f" — {out['error']}" if out.get("error") else ""),
        ]
        tail = ((out.get("stdout") or "") + (out.get("stderr") or "")).strip()
        if tail:
            lines += fence(tail[-2000:])
    lines.append("")
    return lines


def _inline(text: str) -> str:
    """A one-line quote of a detail, in backticks that nothing inside can close."""
    flat = " ⏎ ".join(line.strip() for line in str(text).splitlines() if line.strip())[:600]
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    bar = "`" * (longest + 1)
    return f"{bar} {flat} {bar}"


def fence(text: str, info: str = "") -> list[str]:
    """A Markdown code fence around `text`, longer than any run of backticks inside it,
    so that nothing in host output ends it and turns live (CommonMark §4.5)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return [bar + info, text, bar]


# -- verification ---------------------------------------------------------------------


def chain_name(doc: dict[str, Any]) -> str:
    log = doc.get("log") or []
    first = str(log[0].get("hash", "")) if log else str(doc.get("chain_digest") or "")
    return "SHA-1 chain (older format)" if len(first) == 40 else "SHA-256 chain"


def _check_chain(doc: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The log's hash chain (SHA-256 from the restore's key, or the older SHA-1 from
    nothing), and its bodies parsed."""
    problems: list[str] = []
    log = doc.get("log") or []
    old = chain_name(doc).startswith("SHA-1")
    if old and doc.get("schema") == SCHEMA:
        problems.append("schema 2 but a SHA-1 chain: the chain was replaced")
    if not old and doc.get("schema") == OLD_SCHEMA:
        problems.append("schema 1 but a SHA-256 chain")
    prev = ""
    bodies: list[dict[str, Any]] = []
    for i, entry in enumerate(log):
        body = str(entry.get("body", ""))
        if old:
            digest = hashlib.sha1((prev + body).encode()).hexdigest()
        else:
            start = prev or restore_key(str(doc.get("restore", "")))
            digest = hashlib.sha256((start + body).encode()).hexdigest()
        if digest != entry.get("hash"):
            what = "its content or the restore id" if i == 0 and not old else "its content"
            problems.append(f"event {i + 1}: hash does not match {what} (edited?)")
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise ValueError
        except ValueError:
            problems.append(f"event {i + 1}: not JSON")
            parsed = {}
        if parsed.get("prev", "") != prev:
            problems.append(f"event {i + 1}: does not follow the event before it")
        bodies.append(parsed)
        prev = str(entry.get("hash", ""))
    if (log[-1].get("hash") if log else None) != doc.get("chain_digest"):
        problems.append("chain_digest is not the digest of the log")
    return problems, bodies


_BACKUP_IN_SUMMARY = re.compile(r"\bbackup (scheduler-backup-[\d-]+|-) \((?:([\d.]+)h old)?")
_REVIEWED = re.compile(r"^listing of (\d+) tasks reviewed")
_LEADER = re.compile(r"^leader(?: again)?: (\S+)")


def facts_from_log(bodies: list[dict[str, Any]], procedure: Procedure) -> dict[str, Any]:
    """The header facts the log states, replayed in order: the backup (requested at the
    start, found by preflight, chosen later), its age to the tenth of an hour, the
    leader (found, then after the failover), the reviewed task count (cleared by going
    back). A fact the log never states is absent."""
    preflight = {s.id for s in procedure.by_role(Role.PREFLIGHT)}
    leader = {s.id for s in procedure.by_role(Role.LEADER)}
    review = {s.id for s in procedure.by_role(Role.REVIEW)}
    facts: dict[str, Any] = {}
    for b in bodies:
        t, sid, summary = b.get("type"), b.get("step"), str(b.get("summary") or "")
        if t == "restore_started" and b.get("backup"):
            facts["backup"] = b["backup"]
        elif t == K.SUCCEEDED and sid in preflight:
            m = _BACKUP_IN_SUMMARY.search(summary)
            if m:
                facts["backup"] = None if m.group(1) == "-" else m.group(1)
                facts["backup_age_hours"] = float(m.group(2)) if m.group(2) else None
        elif t == "backup_chosen":
            facts["backup"] = b.get("backup")
            facts.pop("backup_age_hours", None)  # the new age is not in the log
        elif t == K.SUCCEEDED and sid in leader:
            m = _LEADER.match(summary)
            if m:
                facts["leader"] = m.group(1)
        elif t == K.SUCCEEDED and sid in review:
            m = _REVIEWED.match(summary)
            if m:
                facts["reviewed_tasks"] = int(m.group(1))
        elif t == "rewound":
            facts["reviewed_tasks"] = None
    return facts


# Header fields the log cannot vouch for (learnt by steps, kept outside the chain), and
# for which it is checked only where its summaries state them.
NOT_IN_LOG = ("backup_age_seconds", "leader_table", "preflight_leader_table", "review", "kills")


def _header(
    doc: dict[str, Any], bodies: list[dict[str, Any]], procedure: Procedure
) -> dict[str, Any]:
    """Header fields as the log alone has them (absent: the log does not say)."""
    first = bodies[0] if bodies else {}
    out: dict[str, Any] = {}
    if first.get("type") == K.RESTORE_STARTED:
        if first.get("procedure"):
            out["procedure"] = first["procedure"]
        if "procedure_version" in first:
            out["procedure_version"] = first["procedure_version"]
        out["cluster"] = first.get("cluster")
        out["started_by"] = first.get("actor")
        out["started_at"] = _ts(first.get("at"))
    out["ended_at"] = _ts(bodies[-1].get("at")) if bodies else None
    outcome = next(
        (OUTCOMES[b["type"]] for b in reversed(bodies) if b.get("type") in OUTCOMES), None
    )
    if outcome is not None:
        out["outcome"] = outcome
    facts = facts_from_log(bodies, procedure)
    for key in ("backup", "leader", "reviewed_tasks"):
        if key in facts:
            out[key] = facts[key]
    out["backup_age_acknowledged_by"] = _acknowledged_by(
        [{"type": "", **b} for b in bodies], procedure
    )
    return out


def _steps_from_log(bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each step's state replayed from its events, as the engine's patches set it."""
    states: dict[str, dict[str, Any]] = {}
    for b in bodies:
        sid = b.get("step")
        if not sid:
            continue
        st = states.setdefault(
            sid, {"status": StepStatus.PENDING, "attempts": 0, "approved_by": None}
        )
        t = b.get("type")
        if t == K.AWAITING_APPROVAL:
            st["status"] = StepStatus.AWAITING
        elif t == K.APPROVED:
            st.update(status=StepStatus.RUNNING, approved_by=b.get("actor"))
            st["attempts"] += 1
        elif t == K.STARTED:
            st.update(status=StepStatus.RUNNING, attempts=1)
        elif t in (K.RETRIED, K.DELETING_TASKS):
            st["status"] = StepStatus.RUNNING
            st["attempts"] += 1
            if t == K.RETRIED:
                st["retried_by"] = b.get("actor")
        elif t == K.TASKS_DELETED:
            st.update(
                status=StepStatus.AWAITING, summary=b.get("summary", ""), commands=b.get("commands")
            )
        elif t in (K.SUCCEEDED, K.FAILED):
            st["status"] = StepStatus(t)
            if "summary" in b:
                st.update(summary=b.get("summary"), commands=b.get("commands"))
            elif b.get("reason") != "aborted":  # a precondition's failure: its reason
                st["summary"] = b.get("reason")
        elif t == K.SKIPPED:
            st.update(status=StepStatus.SKIPPED, skipped_by=b.get("actor"), reason=b.get("reason"))
        elif t == K.NOT_NEEDED:
            st.update(status=StepStatus.NOT_NEEDED, reason="not needed")
        elif t == K.MARKED_DONE:
            st.update(status=StepStatus.SUCCEEDED, marked_done_by=b.get("actor"))
        elif t == K.INTERRUPTED:
            st["status"] = StepStatus.INTERRUPTED
        elif t == K.RESET and str(b.get("reason", "")).startswith("backup changed to"):
            st.update(status=StepStatus.PENDING, reason="", approved_by=None)  # choose_backup's
        elif t in (K.REWOUND, K.RESET):
            st.update(status=StepStatus.PENDING, summary="", approved_by=None)
        elif t == K.BACKUP_CHOSEN:
            st["status"] = StepStatus.PENDING
    return states


_STEP_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "status": lambda st: st.get("status"),
    "approved_by": lambda st: st.get("approved_by"),
    "skipped_by": lambda st: st.get("skipped_by"),
    "retried_by": lambda st: st.get("retried_by"),
    "marked_done_by": lambda st: st.get("marked_done_by"),
    "attempts": lambda st: st.get("attempts"),
    "summary": lambda st: st.get("summary", st.get("reason", "")),
    "commands": lambda st: st.get("commands") or [],
}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _check_step(
    step: dict[str, Any],
    evs: list[dict[str, Any]],
    st: dict[str, Any],
    rec: list[dict[str, Any]],
    procedure: Procedure,
    old: bool = False,
) -> list[str]:
    """One step against its replayed state and events; `old`: a version-1 export, whose
    titles and checks were the procedure's of its day."""
    sid = str(step.get("id"))
    problems: list[str] = []
    try:
        proc = procedure.step(sid)
    except KeyError:
        return [f"{sid}: not a step of the procedure"]
    for key, value in (
        ()
        if old
        else (
            ("title", proc.title),
            ("phase", proc.phase),
            ("risk", proc.risk.value),
            ("check", proc.check),
        )
    ):
        if key in step and step[key] != value:
            problems.append(f"{sid}: {key} {step[key]!r} is not the procedure's {value!r}")
    for key, rule in _STEP_FIELDS.items():
        if key not in step:
            if not old:
                problems.append(f"{sid}: field {key!r} is missing")
            continue
        want = rule(st)
        if step["status"] == StepStatus.NOT_NEEDED and key == "status":
            want = (
                StepStatus.NOT_NEEDED
                if st.get("status") in (StepStatus.NOT_NEEDED, StepStatus.SKIPPED)
                else want
            )
        if key == "status" and not evs:
            want = StepStatus.PENDING
        if not _same(step[key], want):
            problems.append(f"{sid}: {key} {step[key]!r} but the log says {want!r}")
    derived = {
        "actors": _actors(evs),
        "events": _step_events(evs, rec),
        **step_timing(evs),
    }
    for key, want in derived.items():
        if key not in step and not old:
            problems.append(f"{sid}: field {key!r} is missing")
        elif key in step and not _same(step[key], want):
            problems.append(f"{sid}: {key} is not what the log says")
    problems += _check_hosts(sid, step.get("hosts") or {}, evs)
    return problems


def _check_hosts(sid: str, hosts: dict[str, Any], evs: list[dict[str, Any]]) -> list[str]:
    """Each exported output is the latest attempt the log holds a result of, with the
    digest that result carries (older logs carry neither attempt nor digest)."""
    problems = []
    results = [e for e in evs if e.get("type") == K.HOST_RESULT]
    latest: dict[str, int] = {}
    for e in results:
        if isinstance(e.get("attempt"), int):
            latest[str(e.get("host"))] = max(latest.get(str(e.get("host")), 0), e["attempt"])
    for host, out in hosts.items():
        if not isinstance(out, dict):
            problems.append(f"{sid} on {host}: not an output")
            continue
        result = next(
            (
                e
                for e in reversed(results)  # a host's last command is the output kept
                if e.get("host") == host and e.get("attempt") in (None, out.get("attempt"))
            ),
            None,
        )
        if result is None:
            problems.append(
                f"{sid} on {host}: the log has no result of attempt {out.get('attempt')}"
            )
        elif "output_sha256" in result and result["output_sha256"] != output_digest(out):
            problems.append(f"{sid} on {host}: the output is not the one the log holds")
        elif host in latest and latest[host] != out.get("attempt"):
            problems.append(f"{sid} on {host}: not the latest attempt the log holds")
    return problems


def _check_header(
    doc: dict[str, Any], bodies: list[dict[str, Any]], procedure: Procedure
) -> list[str]:
    problems = []
    want = _header(doc, bodies, procedure)
    for key, value in want.items():
        if key not in doc and doc.get("schema") == SCHEMA:
            problems.append(f"field {key!r} is missing")
        elif key in doc and not _same(doc[key], value):
            problems.append(f"{key} {doc[key]!r} but the log says {value!r}")
    facts = facts_from_log(bodies, procedure)
    age, hours = doc.get("backup_age_seconds"), facts.get("backup_age_hours")
    if (
        isinstance(age, int | float)
        and isinstance(hours, float)
        and abs(age / 3600 - hours) > 0.051
    ):
        problems.append(f"backup_age_seconds {age!r} but the log says {hours}h")
    rec = record(bodies)
    if doc.get("schema") == SCHEMA:
        problems += [f"field {k!r} is missing" for k in ("record", "abort") if k not in doc]
    if "record" in doc and not _same(doc["record"], rec):
        problems.append("record is not what the log says")
    if "abort" in doc and not _same(doc["abort"], abort_of(bodies)):
        problems.append("abort is not what the log says")
    review = doc.get("review")
    if isinstance(review, dict) and "count" in review and "reviewed_tasks" in facts:
        if facts["reviewed_tasks"] is not None and review["count"] != facts["reviewed_tasks"]:
            problems.append(
                f"review count {review['count']!r} but the log says {facts['reviewed_tasks']!r}"
            )
    problems += _check_tables(doc, bodies, procedure)
    return problems


# Where the transcript shows the leader table a step keeps in a fact (Step.table_fact).
TABLE_FIELDS = {
    "preflight_table": "preflight_leader_table",
    "leader_table": "leader_table",
    "failover_table": "failover_leader_table",
}


def _check_tables(
    doc: dict[str, Any], bodies: list[dict[str, Any]], procedure: Procedure
) -> list[str]:
    """A leader table must be the one its step's summary printed (when the summary is
    whole: summaries are capped at 2000 characters)."""
    from runbook.actions import table_rows

    problems = []
    for key, sid in (
        (TABLE_FIELDS[s.table_fact], s.id) for s in procedure if s.table_fact in TABLE_FIELDS
    ):
        table = doc.get(key)
        said = [
            str(b.get("summary") or "")
            for b in bodies
            if b.get("step") == sid
            and b.get("type") in (K.SUCCEEDED, K.FAILED)
            and b.get("summary")
        ]
        if not isinstance(table, dict) or not table or not said or len(said[-1]) >= 2000:
            continue
        try:
            rows = table_rows(table)
        except (AttributeError, TypeError):
            problems.append(f"{key} is not a leader table")
            continue
        if rows not in said[-1]:
            problems.append(f"{key} is not the table {sid} printed in the log")
    return problems


KNOWN_FIELDS = {
    "schema",
    "chain",
    "restore",
    "procedure",
    "procedure_version",
    "cluster",
    "backup",
    "backup_age_seconds",
    "started_by",
    "started_at",
    "ended_at",
    "outcome",
    "leader",
    "reviewed_tasks",
    "leader_table",
    "preflight_leader_table",
    "failover_leader_table",
    "review",
    "backup_age_acknowledged_by",
    "kills",
    "abort",
    "chain_digest",
    "record",
    "steps",
    "log",
}


def verify(
    doc: dict[str, Any],
    procedures: Mapping[str, Procedure],
    live_chain: list[str] | None = None,
) -> list[str]:
    """What is wrong with an export; empty when it is intact.

    Checks the hash chain of the exported log and its final digest, then rebuilds from
    the log every field it states (header, steps, people, times, outputs' digests) and
    compares against the steps of its procedure (`procedure`, one of `procedures`; an
    export from before names none: online); with `live_chain` (the hashes in Redis, while the restore is kept) also
    that the log is the one Redis holds. Each problem is one line naming the field.
    """
    problems: list[str] = []
    if doc.get("schema") not in SCHEMAS:
        problems.append(f"unknown schema {doc.get('schema')!r}")
    procedure = procedure_of(doc, procedures)
    if procedure is None:
        name = doc.get("procedure")
        return [*problems, f"procedure {name!r} is not one this bot knows"]
    chain_problems, bodies = _check_chain(doc)
    problems += chain_problems
    if doc.get("chain") not in (None, "sha256") or (
        doc.get("chain") == "sha256" and chain_name(doc).startswith("SHA-1")
    ):
        problems.append(f"chain {doc.get('chain')!r} but the log is a {chain_name(doc)}")
    for key in sorted(set(doc) - KNOWN_FIELDS):
        problems.append(f"field {key!r} is not part of a transcript")
    problems += _check_header(doc, bodies, procedure)
    states = _steps_from_log(bodies)
    rec = record(bodies) if doc.get("schema") == SCHEMA else []
    steps = doc.get("steps") or []
    ids = [s.get("id") for s in steps if isinstance(s, dict)]
    if doc.get("schema") == SCHEMA and ids != procedure.ids():
        problems.append("steps are not the procedure's steps in order")
    logged = {str(b["step"]) for b in bodies if b.get("step")}
    for sid in sorted(logged - {str(i) for i in ids}):
        problems.append(f"{sid}: in the log but not among the steps")
    for step in steps:
        if not isinstance(step, dict):
            problems.append("steps: an entry is not an object")
            continue
        evs = [b for b in bodies if b.get("step") == step.get("id")]
        st = states.get(str(step.get("id")), {"status": StepStatus.PENDING, "attempts": 0})
        for p in _check_step(step, evs, st, rec, procedure, doc.get("schema") == OLD_SCHEMA):
            if doc.get("schema") == OLD_SCHEMA and p.endswith("is not what the log says"):
                continue  # version 1 wrote its events and timings differently
            problems.append(p)
    if live_chain is not None and [e.get("hash") for e in doc.get("log") or []] != live_chain:
        problems.append("the log differs from the one kept in Redis")
    return problems


def procedure_of(doc: dict[str, Any], procedures: Mapping[str, Procedure]) -> Procedure | None:
    """The procedure an export names (one from before names none: online), if known."""
    return procedures.get(str(doc.get("procedure") or "online"))


def not_vouched(doc: dict[str, Any], procedures: Mapping[str, Procedure]) -> list[str]:
    """Header fields present in the export that its log cannot vouch for (for the
    verify-transcript report, so that nobody takes them for checked)."""
    procedure = procedure_of(doc, procedures)
    if procedure is None:
        return []
    _, bodies = _check_chain(doc)
    said = _header(doc, bodies, procedure)
    rough = "backup_age_hours" in facts_from_log(bodies, procedure)
    out = [
        f"{k} (to 0.1 h only)" if k == "backup_age_seconds" and rough else k
        for k in NOT_IN_LOG
        if doc.get(k) not in (None, {}, [])
    ]
    if chain_name(doc).startswith("SHA-1") and doc.get("restore"):
        out.insert(0, "restore")
    out += [
        k
        for k in ("backup", "leader", "reviewed_tasks")
        if doc.get(k) is not None and k not in said
    ]
    return out

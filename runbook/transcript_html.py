"""A self-contained HTML page for the transcript of a restore (`runbook.transcript.build`).

`to_html(doc)` returns one page: inline CSS, no script, no external font, image or link,
so that it can be attached to an incident and opened offline in any browser. Every value
taken from the document goes through `html.escape` (command output may hold anything).

DOM structure (relied on by tests and by anyone scraping the page):

- `<header id="summary">`: cluster, restore id, backup and its age, who started it, start
  and end, outcome (`<span class="outcome outcome-<outcome>">`), chain digest.
- `<table id="timeline">`: one `<tr class="step" data-step="<step id>" data-status="...">`
  per step, in the order of the document, with cells `td.step-id`, `td.step-status`,
  `td.step-who` and `td.step-bar`. The last holds a `<div class="track">` (position:
  relative) in which a started step has absolute-positioned `<span class="bar-waiting">`
  (waiting for approval) and/or `<span class="bar-running">` (running) spans, whose `left`
  and `width` are percentages of the restore's total duration. A step never started
  (no start time) has an empty track. A `<div id="legend">` explains the colours.
- `<section id="steps">`: per step a `<details class="step-detail" id="step-<id>">` with
  the commands (`<pre class="command">`) and per host a `<div class="host">` with exit
  status, duration, error and the tail (last `OUTPUT_TAIL` characters) of stdout/stderr
  in `<pre class="stdout">` / `<pre class="stderr">`.

Timings of a step come from its `awaiting_at` / `started_at` / `ended_at` fields when the
document has them, else from its events (first `awaiting_approval`, first `approved` or
`started`, last final event).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

OUTPUT_TAIL = 4000

_START_EVENTS = ("approved", "started")
_END_EVENTS = ("succeeded", "failed", "skipped", "marked_done", "interrupted")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:1.5em;color:#1d2330;background:#fff;line-height:1.35}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.4em 0 .5em}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:0}
header dt{font-weight:600;color:#555}header dd{margin:0}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
.outcome{font-weight:700;padding:.05em .5em;border-radius:.3em;color:#fff;background:#777}
.outcome-succeeded{background:#2e7d32}.outcome-failed{background:#c62828}
.outcome-aborted{background:#ad1457}.outcome-reverted{background:#ef6c00}
.outcome-running{background:#1565c0}
#timeline{border-collapse:collapse;width:100%}
#timeline th,#timeline td{text-align:left;padding:.2em .5em;border-bottom:1px solid #e3e6ea;
white-space:nowrap;font-size:.9em}
#timeline td.step-bar{width:55%;min-width:200px}
#timeline tr.step:hover{background:#f5f7fa}
.track{position:relative;height:14px;background:#f0f2f5;border-radius:2px;overflow:hidden}
.track span{position:absolute;top:0;bottom:0;min-width:2px}
.bar-waiting,.legend-waiting{background:#f2b134}
.bar-running,.legend-running{background:#3b7dd8}
#legend{margin:.5em 0;font-size:.85em}
#legend span.swatch{display:inline-block;width:1.2em;height:.8em;margin:0 .3em 0 1em;
vertical-align:middle}
.status-succeeded{color:#2e7d32}.status-failed{color:#c62828}.status-skipped{color:#8a6d00}
.status-interrupted{color:#ad1457}.status-not-needed,.status-pending{color:#888}
details.step-detail{border:1px solid #e3e6ea;border-radius:4px;margin:.4em 0;padding:.3em .7em}
details.step-detail summary{cursor:pointer;font-weight:600}
pre{background:#f6f8fa;padding:.5em;overflow:auto;white-space:pre-wrap;word-break:break-all;
margin:.3em 0}
pre.stderr{background:#fff4f4}
.host{margin:.6em 0 .6em 1em}.meta{color:#555;font-size:.9em}.error{color:#c62828}
"""


def _e(value: Any) -> str:
    """Escapes anything for HTML text or a quoted attribute; None becomes an empty string."""
    return "" if value is None else escape(str(value), quote=True)


def _parse(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def _event_at(step: dict[str, Any], types: tuple[str, ...], last: bool = False) -> Any:
    events = [e for e in step.get("events") or [] if isinstance(e, dict)]
    if last:
        events = list(reversed(events))
    return next((e.get("at") for e in events if e.get("type") in types), None)


def step_times(step: dict[str, Any]) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(awaiting approval since, started, ended) of a step; None where unknown."""
    awaiting = _parse(step.get("awaiting_at") or _event_at(step, ("awaiting_approval",)))
    started = _parse(step.get("started_at") or _event_at(step, _START_EVENTS))
    ended = _parse(step.get("ended_at") or _event_at(step, _END_EVENTS, last=True))
    return awaiting, started, ended


def _span(doc: dict[str, Any]) -> tuple[datetime | None, float]:
    """Origin and total duration (seconds) of the restore, for the timeline."""
    points: list[datetime] = []
    for step in doc.get("steps") or []:
        points += [t for t in step_times(step) if t is not None]
    start = _parse(doc.get("started_at"))
    end = _parse(doc.get("ended_at"))
    if points:
        start = min([start, *points]) if start else min(points)
        end = max([end, *points]) if end else max(points)
    if start is None or end is None:
        return start, 0.0
    return start, max((end - start).total_seconds(), 0.0)


def _pct(t: datetime, origin: datetime, total: float) -> float:
    return min(max((t - origin).total_seconds() / total * 100, 0.0), 100.0)


def _bar(step: dict[str, Any], origin: datetime | None, total: float, now: datetime | None) -> str:
    awaiting, started, ended = step_times(step)
    if started is None or origin is None or total <= 0:
        return ""
    spans = []
    if awaiting is not None and awaiting <= started:
        left, right = _pct(awaiting, origin, total), _pct(started, origin, total)
        spans.append(
            f'<span class="bar-waiting" style="left:{left:.3f}%;width:{right - left:.3f}%" '
            f'title="waiting for approval {(started - awaiting).total_seconds():.3f}s"></span>'
        )
    finish = ended if ended is not None and ended >= started else now
    if finish is not None and finish >= started:
        left, right = _pct(started, origin, total), _pct(finish, origin, total)
        spans.append(
            f'<span class="bar-running" style="left:{left:.3f}%;width:{right - left:.3f}%" '
            f'title="running {(finish - started).total_seconds():.3f}s"></span>'
        )
    return "".join(spans)


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    if seconds >= 3600:
        return f" ({seconds / 3600:.1f} hours old)"
    return f" ({seconds / 60:.0f} minutes old)"


def _header(doc: dict[str, Any]) -> str:
    outcome = str(doc.get("outcome") or "unknown")
    rows = [
        ("Cluster", f"<code>{_e(doc.get('cluster'))}</code>"),
        ("Restore", f"<code>{_e(doc.get('restore'))}</code>"),
        (
            "Backup",
            f"<code>{_e(doc.get('backup'))}</code>{_e(_age(doc.get('backup_age_seconds')))}",
        ),
        ("Started by", _e(doc.get("started_by"))),
        ("Started", _e(doc.get("started_at"))),
        ("Ended", _e(doc.get("ended_at"))),
        (
            "Outcome",
            f'<span class="outcome outcome-{_e(outcome.replace(" ", "-"))}">{_e(outcome)}</span>',
        ),
        ("Leader", _e(doc.get("leader"))),
        ("Reviewed tasks", _e(doc.get("reviewed_tasks"))),
        ("Chain digest", f"<code>{_e(doc.get('chain_digest'))}</code>"),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<header id="summary"><h1>Restore <code>{_e(doc.get("restore"))}</code> of cluster '
        f"<code>{_e(doc.get('cluster'))}</code></h1><dl>{body}</dl></header>"
    )


def _who(step: dict[str, Any]) -> str:
    who = []
    if step.get("approved_by"):
        who.append(f"approved by {step['approved_by']}")
    if step.get("skipped_by"):
        who.append(f"skipped by {step['skipped_by']}")
    return _e("; ".join(who))


def _timeline(doc: dict[str, Any]) -> str:
    origin, total = _span(doc)
    now = _parse(doc.get("ended_at"))
    rows = []
    for step in doc.get("steps") or []:
        sid, status = _e(step.get("id")), _e(step.get("status"))
        status_cls = _e(str(step.get("status") or "").replace(" ", "-"))
        rows.append(
            f'<tr class="step" data-step="{sid}" data-status="{status}">'
            f'<td class="step-id"><a href="#step-{sid}"><code>{sid}</code></a></td>'
            f'<td class="step-status status-{status_cls}">{status}</td>'
            f'<td class="step-who">{_who(step)}</td>'
            f'<td class="step-bar"><div class="track">{_bar(step, origin, total, now)}'
            "</div></td></tr>"
        )
    return (
        '<section id="timeline-section"><h2>Timeline</h2>'
        f'<div class="meta">Total {total:.3f}s from {_e(origin.isoformat(timespec="milliseconds") if origin else "")}'
        "</div>"
        '<div id="legend"><span class="swatch legend-waiting"></span>waiting for approval'
        '<span class="swatch legend-running"></span>running</div>'
        '<table id="timeline"><thead><tr><th>Step</th><th>Status</th><th>Who</th>'
        f"<th>Time</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _tail(text: Any) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= OUTPUT_TAIL else "…" + s[-OUTPUT_TAIL:]


def _host(name: str, out: dict[str, Any]) -> str:
    parts = [
        f'<div class="host" data-host="{_e(name)}"><div><strong>{_e(name)}</strong> '
        f'<span class="meta">attempt {_e(out.get("attempt"))} · exit '
        f"{_e(out.get('exit_status'))} · {_e(out.get('duration'))}s"
        + (" · output truncated" if out.get("truncated") else "")
        + "</span></div>"
    ]
    if out.get("error"):
        parts.append(f'<div class="error">{_e(out["error"])}</div>')
    for stream in ("stdout", "stderr"):
        if out.get(stream):
            parts.append(f'<pre class="{stream}">{_e(_tail(out[stream]))}</pre>')
    parts.append("</div>")
    return "".join(parts)


def _detail(step: dict[str, Any]) -> str:
    sid = _e(step.get("id"))
    awaiting, started, ended = step_times(step)
    parts = [
        f'<details class="step-detail" id="step-{sid}" data-step="{sid}">'
        f"<summary><code>{sid}</code> — {_e(step.get('title'))} "
        f'<span class="meta">({_e(step.get("status"))})</span></summary>',
        f'<div class="meta">phase {_e(step.get("phase"))} · risk {_e(step.get("risk"))} · '
        f"attempts {_e(step.get('attempts'))} · check: {_e(step.get('check'))}</div>",
    ]
    who = _who(step)
    if who:
        parts.append(f'<div class="meta">{who}</div>')
    times = [
        f"{label} {_e(t.isoformat(timespec='milliseconds'))}"
        for label, t in (("awaiting approval", awaiting), ("started", started), ("ended", ended))
        if t is not None
    ]
    if times:
        parts.append(f'<div class="meta">{" · ".join(times)}</div>')
    if step.get("summary"):
        parts.append(f"<p>{_e(step['summary'])}</p>")
    notes = [e for e in step.get("events") or [] if isinstance(e, dict) and e.get("detail")]
    if notes:
        items = "".join(
            f'<li data-event="{_e(e.get("type"))}">{_e(e.get("at"))} '
            f"{_e(e.get('actor') or 'bot')} {_e(str(e.get('type')).replace('_', ' '))}: "
            f"{_e(e['detail'])}</li>"
            for e in notes
        )
        parts.append(f'<ul class="notes">{items}</ul>')
    for batch in step.get("commands") or []:
        if isinstance(batch, dict):
            text = "\n".join(f"[{h}] $ {c}" for h, c in batch.items())
        else:
            text = str(batch)
        parts.append(f'<pre class="command">{_e(text)}</pre>')
    hosts = step.get("hosts") or {}
    for name in sorted(hosts):
        out = hosts[name] if isinstance(hosts[name], dict) else {}
        parts.append(_host(str(name), out))
    parts.append("</details>")
    return "".join(parts)


def to_html(doc: dict[str, Any]) -> str:
    """The transcript as one self-contained HTML page (see the module docstring)."""
    title = f"Restore {doc.get('restore')} of {doc.get('cluster')}"
    details = "".join(_detail(s) for s in doc.get("steps") or [])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"{_header(doc)}{_timeline(doc)}"
        f'<section id="steps"><h2>Steps</h2>{details}</section>'
        f'<footer class="meta">{_e(doc.get("schema"))}</footer>'
        "</body></html>\n"
    )

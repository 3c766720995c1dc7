"""A self-contained HTML page for the transcript of a restore (`runbook.transcript.build`).

`to_html(doc)` returns one page: inline CSS, no script, no external font, image or link,
so that it can be attached to an incident and opened offline in any browser. Every value
taken from the document goes through `html.escape` (command output may hold anything).

DOM structure (relied on by tests and by anyone scraping the page):

- `<header id="summary">`: cluster, restore id, backup and its age, who started it, start
  and end, outcome (`<span class="outcome outcome-<outcome>">`), chain digest.
- `<section id="abort">` (an aborted restore only): who aborted (`p.abort-who`), when,
  the step that was current, whether a revert was asked for; how the abort ended
  (`p.abort-ending[data-ending]`) with its summary, per host, in `<pre class="abort-summary">`;
  the way back (`p.put-back`).
- `<table id="timeline">`: the header's last cell holds the clock axis, `<div class="axis">`
  with `<span class="tick">` labels (UTC `HH:MM:SS`, with milliseconds when the ticks
  are finer than a second) at round times. A first `<tr class="restore-row">` carries the
  restore-level events' markers; then one `<tr class="step" data-step="<step id>"
  data-status="...">` per step, in the order of the document, with cells `td.step-id`,
  `td.step-status`, `td.step-who` and `td.step-bar`. The last holds a `<div class="track">`
  (position: relative) with absolute-positioned `<span class="bar-waiting">` (waiting
  for approval; until the abort or the export for a step still awaiting) and one
  `<span class="bar-running">` per run (a retried step has several), whose `left` and
  `width` are percentages of the restore's total duration, and
  `<span class="marker marker-<kind>" data-event="<type>">` at the time of each event
  that has a marker (`abort`, `interruption`, `retry`, `refusal`, `ending`; an abort
  also shows on the row of the step that was current). A step never started (no start
  time) and not awaiting has no bar. A `<div id="legend">` explains colours and markers.
- `<section id="record">`: every event but host results, in order: `<li class="event
  mark-<kind>" data-event="<type>">` with its UTC time, step (or the restore and the
  step that was current), how it reads and the first line of its detail.
- `<section id="steps">`: per step a `<details class="step-detail" id="step-<id>">` with
  the commands (`<pre class="command">`) and per host a `<div class="host">` with exit
  status, duration, error and the tail (last `OUTPUT_TAIL` characters) of stdout/stderr
  in `<pre class="stdout">` / `<pre class="stderr">`.

Timings of a step come from its `awaiting_at` / `started_at` / `ended_at` fields (and
`runs`) when the document has them, else from its events (first `awaiting_approval`,
first `approved` or `started`, last final event), so version-1 documents still draw.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any

from runbook.events import EventKind as K
from runbook.state import StepStatus
from runbook.transcript import where_of

OUTPUT_TAIL = 4000

_START_EVENTS = ("approved", "started")
_END_EVENTS = (K.SUCCEEDED, K.FAILED, K.SKIPPED, K.MARKED_DONE, K.INTERRUPTED)

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
#timeline td.step-bar,#timeline th.axis-head{width:55%;min-width:200px;padding-right:14px}
#timeline tr.step:hover{background:#f5f7fa}
.track{position:relative;height:14px;background:#f0f2f5;border-radius:2px}
.track span{position:absolute;top:0;bottom:0;min-width:2px}
.track i.grid{position:absolute;top:-3px;bottom:-3px;width:0;border-left:1px dotted #b8bec8}
.axis{position:relative;height:1.3em;font-weight:400;color:#555;font-size:.8em}
.axis .tick{position:absolute;transform:translateX(-50%);white-space:nowrap;bottom:0}
.axis .tick::after{content:"";position:absolute;left:50%;bottom:-.35em;height:.3em;
border-left:1px solid #888}
.marker{display:inline-block;width:13px;height:13px;box-sizing:border-box;z-index:2}
.track span.marker{top:0;bottom:auto;min-width:0;transform:translateX(-50%)}
.marker-abort{background:#d50000;transform:rotate(45deg);border:2px solid #fff;
box-shadow:0 0 0 1px #d50000}
.track span.marker-abort{transform:translateX(-50%) rotate(45deg)}
.marker-interruption{background:#aa00ff;clip-path:polygon(50% 100%,0 0,100% 0)}
.marker-retry{background:#0091ea;border:2px solid #fff;border-radius:50%;
box-shadow:0 0 0 1px #0091ea}
.marker-refusal{background:#212121;border:3px solid #ffab00}
.marker-ending{background:#fff;border:3px solid #37474f;border-radius:50%}
#legend .key{margin-left:1em}#legend .key .marker{margin-right:.3em;vertical-align:middle}
tr.restore-row td{font-weight:600;background:#fafbfc}
#abort{border:2px solid #d50000;border-radius:6px;padding:.2em 1em;margin:1em 0;background:#fff8f8}
#abort h2{color:#d50000;margin-top:.4em}
ol.record{padding-left:1.5em;font-size:.9em}ol.record li{margin:.15em 0}
ol.record time{font-family:ui-monospace,Menlo,Consolas,monospace;color:#555}
ol.record li.mark-abort{color:#b71c1c;font-weight:600}
ol.record li.mark-interruption{color:#7b1fa2}ol.record li.mark-retry{color:#0d47a1}
ol.record li.mark-refusal{color:#4e342e}ol.record li.mark-ending{font-weight:600}
q.detail{color:#555}q.detail::before{content:"— "}q.detail::after{content:""}
th.axis-head{padding-bottom:.5em}
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


def _pos(t: datetime | None, origin: datetime | None, total: float) -> float | None:
    if t is None or origin is None or total <= 0:
        return None
    return _pct(t, origin, total)


def _span_html(
    cls: str, a: datetime, b: datetime, origin: datetime, total: float, title: str
) -> str:
    left, right = _pct(a, origin, total), _pct(b, origin, total)
    return (
        f'<span class="{cls}" style="left:{left:.3f}%;width:{right - left:.3f}%" '
        f'title="{_e(title)} {(b - a).total_seconds():.3f}s"></span>'
    )


def _bar(step: dict[str, Any], origin: datetime | None, total: float, now: datetime | None) -> str:
    awaiting, started, ended = step_times(step)
    if origin is None or total <= 0:
        return ""
    if started is None:  # still waiting for approval when exported (or aborted)
        if step.get("status") == StepStatus.AWAITING and awaiting is not None and now is not None:
            return _span_html(
                "bar-waiting", awaiting, max(now, awaiting), origin, total, "waiting for approval"
            )
        return ""
    spans = []
    if awaiting is not None and awaiting <= started:
        spans.append(
            _span_html("bar-waiting", awaiting, started, origin, total, "waiting for approval")
        )
    runs = [r for r in step.get("runs") or [] if isinstance(r, dict) and _parse(r.get("start"))]
    if not runs:
        runs = [{"start": started.isoformat(), "end": ended.isoformat() if ended else None}]
    for n, run in enumerate(runs, 1):
        begin = _parse(run.get("start"))
        stop = _parse(run.get("end"))
        finish = stop if stop is not None and begin is not None and stop >= begin else now
        if begin is not None and finish is not None and finish >= begin:
            label = f"run {n} by {run.get('by') or 'the bot'}" if len(runs) > 1 else "running"
            spans.append(_span_html("bar-running", begin, finish, origin, total, label))
    return "".join(spans)


# Timeline markers: event marker -> (what the legend calls it).
MARKERS = {
    "abort": "abort",
    "interruption": "interruption",
    "retry": "retry",
    "refusal": "refusal",
    "ending": "how it ended",
}


def _markers(events: list[dict[str, Any]], origin: datetime | None, total: float) -> str:
    out = []
    for e in events:
        if not isinstance(e, dict) or e.get("marker") not in MARKERS:
            continue
        left = _pos(_parse(e.get("at")), origin, total)
        if left is None:
            continue
        title = f"{e.get('at')}: {e.get('text') or e.get('type')}"
        out.append(
            f'<span class="marker marker-{_e(e["marker"])}" data-event="{_e(e.get("type"))}" '
            f'style="left:{left:.3f}%" title="{_e(title)}"></span>'
        )
    return "".join(out)


_TICKS = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)


def ticks(origin: datetime | None, total: float) -> list[tuple[float, datetime]]:
    """Clock ticks for the axis: at most about eight, on round UTC times."""
    if origin is None or total <= 0:
        return []
    step = next((t for t in _TICKS if total / t <= 8), _TICKS[-1])
    first = math.ceil(origin.timestamp() / step) * step
    out = []
    n = 0
    while (at := first + n * step) <= origin.timestamp() + total + 1e-9:
        when = datetime.fromtimestamp(round(at, 3), UTC)
        out.append((_pct(when, origin, total), when))
        n += 1
    return out


def _tick_label(when: datetime, fine: bool) -> str:
    return when.strftime("%H:%M:%S") + (f".{when.microsecond // 1000:03d}" if fine else "")


def _axis(origin: datetime | None, total: float) -> str:
    marks = ticks(origin, total)
    fine = any(w.microsecond for _, w in marks)
    labels = "".join(
        f'<span class="tick" style="left:{left:.3f}%">{_e(_tick_label(w, fine))}</span>'
        for left, w in marks
    )
    return f'<div class="axis" data-ticks="{len(marks)}">{labels}</div>'


def _grid(origin: datetime | None, total: float) -> str:
    return "".join(
        f'<i class="grid" style="left:{left:.3f}%"></i>' for left, _ in ticks(origin, total)
    )


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
        ("Leader", _e(_or_dash(doc.get("leader")))),
        ("Reviewed tasks", _e(_or_dash(doc.get("reviewed_tasks")))),
        (
            "Kills",
            _e(
                f"forecast {_or_dash((doc.get('kills') or {}).get('predicted'))}, "
                f"observed {_or_dash((doc.get('kills') or {}).get('observed'))}"
                f" ({(doc.get('kills') or {}).get('forecast') or 'no forecast'})"
            ),
        ),
        ("Chain digest", f"<code>{_e(doc.get('chain_digest'))}</code> ({_e(_chain(doc))})"),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<header id="summary"><h1>Restore <code>{_e(doc.get("restore"))}</code> of cluster '
        f"<code>{_e(doc.get('cluster'))}</code></h1><dl>{body}</dl></header>"
    )


def _or_dash(value: Any) -> Any:
    return "—" if value is None else value


def _chain(doc: dict[str, Any]) -> str:
    digest = str(doc.get("chain_digest") or "")
    return "SHA-1 chain, older format" if len(digest) == 40 else "SHA-256 chain"


def _abort(doc: dict[str, Any]) -> str:
    """Who aborted, when, at which step, the revert asked for, and how it ended."""
    ab = doc.get("abort")
    if not isinstance(ab, dict):
        return ""
    revert = "a revert was asked for" if ab.get("revert") else "no revert was asked for"
    parts = [
        '<section id="abort"><h2>Abort</h2>',
        f'<p class="abort-who">Aborted by <strong>{_e(ab.get("by"))}</strong> at '
        f"<time>{_e(ab.get('at'))}</time>, while <code>{_e(ab.get('step') or 'no step')}</code> "
        f"was the current step; {_e(revert)}.</p>",
    ]
    if ab.get("ending"):
        parts.append(
            f'<p class="abort-ending" data-ending="{_e(ab["ending"])}">How it ended: '
            f"<strong>{_e(str(ab['ending']).replace('_', ' '))}</strong> at "
            f"<time>{_e(ab.get('ended_at'))}</time>"
            + (" — what was and was not reverted, per host:" if ab.get("summary") else "")
            + "</p>"
        )
        if ab.get("summary"):
            parts.append(f'<pre class="abort-summary">{_e(ab["summary"])}</pre>')
    else:
        parts.append('<p class="abort-ending">The abort has not ended yet.</p>')
    for back in ab.get("put_back") or []:
        if not isinstance(back, dict):
            continue
        parts.append(
            f'<p class="put-back" data-event="{_e(back.get("type"))}"><time>{_e(back.get("at"))}'
            f"</time> {_e(back.get('actor') or 'the bot')}: "
            f"{_e(str(back.get('type')).replace('_', ' '))}</p>"
        )
        if back.get("summary"):
            parts.append(f'<pre class="put-back-summary">{_e(back["summary"])}</pre>')
    parts.append("</section>")
    return "".join(parts)


_WHO = (
    ("approved_by", "approved by"),
    ("skipped_by", "skipped by"),
    ("retried_by", "retried by"),
    ("marked_done_by", "marked done by"),
)


def _who(step: dict[str, Any]) -> str:
    return _e("; ".join(f"{label} {step[key]}" for key, label in _WHO if step.get(key)))


def _restore_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc.get("record") or [] if isinstance(r, dict) and not r.get("step")]


def _timeline(doc: dict[str, Any]) -> str:
    origin, total = _span(doc)
    # A wait or a run with no end lasts until the abort, else until the export.
    raw = doc.get("abort")
    abort: dict[str, Any] = raw if isinstance(raw, dict) else {}
    now = _parse(abort.get("at")) or _parse(doc.get("ended_at"))
    grid = _grid(origin, total)
    # An abort shows on the row of the step that was current, too.
    at_step: dict[str, list[dict[str, Any]]] = {}
    for r in _restore_events(doc):
        if r.get("marker") == "abort" and r.get("current_step"):
            at_step.setdefault(str(r["current_step"]), []).append(r)
    outcome = str(doc.get("outcome") or "")
    rows = [
        f'<tr class="restore-row" data-outcome="{_e(outcome)}"><td class="step-id">restore</td>'
        f'<td class="step-status status-{_e(outcome.replace(" ", "-"))}">{_e(outcome)}</td>'
        f'<td class="step-who">started by {_e(doc.get("started_by"))}</td>'
        f'<td class="step-bar"><div class="track">{grid}'
        f"{_markers(_restore_events(doc), origin, total)}</div></td></tr>"
    ]
    for step in doc.get("steps") or []:
        sid, status = _e(step.get("id")), _e(step.get("status"))
        status_cls = _e(str(step.get("status") or "").replace(" ", "-"))
        marks = [*(step.get("events") or []), *at_step.get(str(step.get("id")), [])]
        rows.append(
            f'<tr class="step" data-step="{sid}" data-status="{status}">'
            f'<td class="step-id"><a href="#step-{sid}"><code>{sid}</code></a></td>'
            f'<td class="step-status status-{status_cls}">{status}</td>'
            f'<td class="step-who">{_who(step)}</td>'
            f'<td class="step-bar"><div class="track">{grid}{_bar(step, origin, total, now)}'
            f"{_markers(marks, origin, total)}</div></td></tr>"
        )
    start = _e(origin.isoformat(timespec="milliseconds") if origin else "")
    legend = "".join(
        f'<span class="key"><span class="marker marker-{k}"></span>{_e(v)}</span>'
        for k, v in MARKERS.items()
    )
    return (
        '<section id="timeline-section"><h2>Timeline</h2>'
        f'<div class="meta">Total {total:.3f}s from {start} (times in UTC)</div>'
        '<div id="legend"><span class="swatch legend-waiting"></span>waiting for approval'
        f'<span class="swatch legend-running"></span>running{legend}</div>'
        '<table id="timeline"><thead><tr><th>Step</th><th>Status</th><th>Who</th>'
        f'<th class="axis-head">{_axis(origin, total)}</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _record(doc: dict[str, Any]) -> str:
    """Everything that happened, in order, with its UTC time: the record of the restore."""
    items = []
    for r in doc.get("record") or []:
        if not isinstance(r, dict) or r.get("type") == "awaiting_approval":
            continue
        where = where_of(r)
        marker = r.get("marker")
        detail = _first_line(r.get("detail"))
        items.append(
            f'<li class="event{" mark-" + _e(marker) if marker else ""}" '
            f'data-event="{_e(r.get("type"))}">'
            f"<time>{_e(_clock(r.get('at')))}</time> <code>{_e(where)}</code> {_e(r.get('text'))}"
            + (f' <q class="detail">{_e(detail)}</q>' if detail else "")
            + "</li>"
        )
    if not items:
        return ""
    return f'<section id="record"><h2>Record</h2><ol class="record">{"".join(items)}</ol></section>'


def _first_line(text: Any, limit: int = 300) -> str:
    """The first line of a detail, for the record (the whole text is under its step)."""
    lines = [line for line in str(text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    head = lines[0] if len(lines[0]) <= limit else lines[0][:limit] + "…"
    return head + (" …" if len(lines) > 1 else "")


def _clock(ts: Any) -> str:
    t = _parse(ts)
    return t.astimezone(UTC).strftime("%H:%M:%S.%f")[:12] + " UTC" if t else ""


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


def _seconds(value: Any) -> str:
    return f"{value:.3f}s" if isinstance(value, int | float) else "-"


def _timing(step: dict[str, Any]) -> str:
    awaiting, started, ended = step_times(step)
    if started is None and awaiting is None:
        return ""
    runs = [r for r in step.get("runs") or [] if isinstance(r, dict)]
    text = (
        f"started {_clock(step.get('started_at')) or '-'} · waited for approval "
        f"{_seconds(step.get('waiting_seconds'))} · ran {_seconds(step.get('running_seconds'))}"
    )
    if len(runs) > 1:
        text += " in " + ", ".join(
            f"run {n} ({r.get('by') or 'the bot'}, {_seconds(r.get('seconds'))}, {r.get('how') or 'running'})"
            for n, r in enumerate(runs, 1)
        )
    return f'<div class="meta timing">{_e(text)}</div>'


def _detail(step: dict[str, Any]) -> str:
    sid = _e(step.get("id"))
    awaiting, started, ended = step_times(step)
    parts = [
        f'<details class="step-detail" id="step-{sid}" data-step="{sid}">'
        f"<summary><code>{sid}</code> — {_e(step.get('title'))} "
        f'<span class="meta">({_e(step.get("status"))})</span></summary>',
        f'<div class="meta">phase {_e(step.get("phase"))} · risk {_e(step.get("risk"))} · '
        f"attempts {_e(step.get('attempts'))} · check: {_e(step.get('check'))}</div>",
        _timing(step),
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
    notes = [
        e
        for e in step.get("events") or []
        if isinstance(e, dict)
        and (e.get("detail") or e.get("text"))
        and e.get("type") != "host_result"
    ]
    if notes:
        items = "".join(
            f'<li data-event="{_e(e.get("type"))}">{_e(e.get("at"))} '
            + (
                _e(e["text"])
                if e.get("text")
                else f"{_e(e.get('actor') or 'bot')} {_e(str(e.get('type')).replace('_', ' '))}"
            )
            + (f": {_e(e['detail'])}" if e.get("detail") else "")
            + "</li>"
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
        f"{_header(doc)}{_abort(doc)}{_timeline(doc)}{_record(doc)}"
        f'<section id="steps"><h2>Steps</h2>{details}</section>'
        f'<footer class="meta">{_e(doc.get("schema"))}</footer>'
        "</body></html>\n"
    )

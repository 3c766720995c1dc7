"""The HTML transcript (`runbook.transcript_html`): structure, escaping, and a real browser."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from runbook.transcript_html import OUTPUT_TAIL, to_html

SAMPLE = Path(__file__).parent / "data" / "transcript-sample.json"
IN_CI = os.environ.get("CI") == "true"
XSS = "<script>alert(1)</script>"
NEVER_STARTED = {"prep.ack_backup", "prep.block_traffic", "prep.auth"}


@pytest.fixture
def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


class Rows(HTMLParser):
    """The timeline rows of a page: [(step id, [bar classes], {bar class: style})]."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.scripts = 0
        self.in_row = False
        self.legend = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "script":
            self.scripts += 1
        if a.get("id") == "legend":
            self.legend = True
        if tag == "tr" and "step" in classes:
            self.rows.append({"id": a.get("data-step"), "status": a.get("data-status"), "bars": {}})
            self.in_row = True
        elif tag == "span" and self.in_row:
            for cls in ("bar-waiting", "bar-running"):
                if cls in classes:
                    self.rows[-1]["bars"][cls] = a.get("style") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.in_row = False


class Attrs(HTMLParser):
    """Every tag name and attribute value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.values += [v or "" for _, v in attrs]


def parse(page: str) -> Rows:
    p = Rows()
    p.feed(page)
    return p


def _width(style: str) -> float:
    m = re.search(r"width:\s*([\d.]+)%", style)
    assert m, style
    return float(m.group(1))


def _left(style: str) -> float:
    m = re.search(r"left:\s*([\d.]+)%", style)
    assert m, style
    return float(m.group(1))


def check_timeline(p: Rows, doc: dict[str, Any]) -> None:
    assert [r["id"] for r in p.rows] == [s["id"] for s in doc["steps"]]
    for row, step in zip(p.rows, doc["steps"], strict=True):
        assert row["status"] == step["status"]
        if step["id"] in NEVER_STARTED:
            assert row["bars"] == {}, row
        else:
            assert "bar-running" in row["bars"], row
            for style in row["bars"].values():
                assert 0 <= _left(style) <= 100 and 0 <= _width(style) <= 100
        waited = any(e["type"] == "awaiting_approval" for e in step["events"])
        if step["id"] not in NEVER_STARTED:
            assert ("bar-waiting" in row["bars"]) == waited, row


# -- pure ---------------------------------------------------------------------------------


def test_every_step_is_one_timeline_row_in_order(doc: dict[str, Any]) -> None:
    page = to_html(doc)
    p = parse(page)
    check_timeline(p, doc)
    for s in doc["steps"]:
        assert page.count(f'<tr class="step" data-step="{s["id"]}"') == 1
        assert page.count(f'<details class="step-detail" id="step-{s["id"]}"') == 1
    assert p.legend and "waiting for approval" in page and "running" in page


def test_header(doc: dict[str, Any]) -> None:
    page = to_html(doc)
    header = page.split('<header id="summary">', 1)[1].split("</header>", 1)[0]
    for key in ("cluster", "restore", "backup", "started_by", "started_at", "ended_at"):
        assert str(doc[key]) in header, key
    assert doc["chain_digest"] in header
    assert '<span class="outcome outcome-succeeded">succeeded</span>' in header
    assert "minutes old" in header


def test_bars_follow_the_step_times() -> None:
    doc = {
        "started_at": "2026-01-01T00:00:00.000+00:00",
        "ended_at": "2026-01-01T00:01:40.000+00:00",
        "outcome": "failed",
        "steps": [
            {
                "id": "a",
                "status": "succeeded",
                "awaiting_at": "2026-01-01T00:00:10.000+00:00",
                "started_at": "2026-01-01T00:00:30.000+00:00",
                "ended_at": "2026-01-01T00:00:50.000+00:00",
                "events": [],
            },
            {  # still running when exported: runs up to the end of the restore
                "id": "b",
                "status": "running",
                "events": [{"type": "started", "at": "2026-01-01T00:01:00.000+00:00"}],
            },
            {"id": "c", "status": "pending", "events": []},
        ],
    }
    page = to_html(doc)
    rows = {r["id"]: r["bars"] for r in parse(page).rows}
    assert _left(rows["a"]["bar-waiting"]) == pytest.approx(10)
    assert _width(rows["a"]["bar-waiting"]) == pytest.approx(20)
    assert _left(rows["a"]["bar-running"]) == pytest.approx(30)
    assert _width(rows["a"]["bar-running"]) == pytest.approx(20)
    assert set(rows["b"]) == {"bar-running"}
    assert _left(rows["b"]["bar-running"]) == pytest.approx(60)
    assert _width(rows["b"]["bar-running"]) == pytest.approx(40)
    assert rows["c"] == {}
    assert "outcome-failed" in page


def test_everything_is_escaped(doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(doc)
    step = doc["steps"][0]
    host = next(iter(step["hosts"]))
    step["hosts"][host]["stdout"] = f"ok\n{XSS}\n"
    step["hosts"][host]["stderr"] = XSS
    step["hosts"][host]["error"] = XSS
    step["commands"][0][host] = f"echo '{XSS}' && true"
    step["title"] = step["summary"] = XSS
    step["approved_by"] = '"><img src=x onerror=alert(1)>'
    doc["cluster"] = doc["started_by"] = XSS
    doc["outcome"] = 'x" onmouseover="alert(1)'
    page = to_html(doc)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert 'onmouseover="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"echo &#x27;{'&lt;script&gt;alert(1)&lt;/script&gt;'}&#x27; &amp;&amp; true" in page
    assert parse(page).scripts == 0
    check_timeline(parse(page), doc)


def test_output_keeps_its_tail(doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(doc)
    host = next(iter(doc["steps"][0]["hosts"]))
    doc["steps"][0]["hosts"][host]["stdout"] = "HEAD" + "x" * 10_000 + "THE-END"
    page = to_html(doc)
    assert "THE-END" in page and "HEADx" not in page
    pre = re.search(r'<pre class="stdout">([^<]*THE-END)</pre>', page)
    assert pre and len(pre.group(1)) <= OUTPUT_TAIL + 1


def test_self_contained(doc: dict[str, Any]) -> None:
    page = to_html(doc)
    assert not re.search(r"""\bsrc\s*=""", page, re.I)
    hrefs = re.findall(r"""\bhref\s*=\s*["']?([^"'\s>]*)""", page, re.I)
    assert hrefs and all(h.startswith("#step-") for h in hrefs), hrefs
    # Text may mention URLs (commands do); no attribute or style may load anything.
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert not re.search(r"https?:|//|@import|url\(|@font-face", style, re.I)
    attrs = Attrs()
    attrs.feed(page)
    assert attrs.values and not [v for v in attrs.values if re.search(r"https?:|//", v, re.I)]
    assert not {"script", "link", "img", "iframe", "object", "embed"} & attrs.tags
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_minimal_document() -> None:
    page = to_html({"steps": [{"id": "x"}]})
    assert [r["id"] for r in parse(page).rows] == ["x"]


# -- a real browser -----------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        if IN_CI:
            pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _run(chromium: str, tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_chromium_renders_the_timeline(chromium: str, tmp_path: Path, doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(doc)
    host = next(iter(doc["steps"][0]["hosts"]))
    doc["steps"][0]["hosts"][host]["stdout"] = XSS
    page = tmp_path / "transcript.html"
    page.write_text(to_html(doc), encoding="utf-8")

    dumped = _run(chromium, tmp_path, "dom", "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = parse(dumped.stdout)
    check_timeline(dom, doc)
    assert dom.scripts == 0  # the planted script stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dumped.stdout

    png = tmp_path / "transcript.png"
    shot = _run(
        chromium,
        tmp_path,
        "shot",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=1000",
        "--hide-scrollbars",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        page.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 20_000, len(data)  # a blank page compresses to a few KB


def test_clock_axis_and_markers() -> None:
    """Round UTC ticks over the restore's span; each marked event at its time, with its
    own shape; an abort also on the row of the step that was current."""
    at = "2026-01-01T00:00:{:06.3f}+00:00".format
    doc = {
        "started_at": at(0),
        "ended_at": at(50),
        "outcome": "reverted",
        "abort": {"by": "bob", "at": at(40), "step": "b", "revert": True, "ending": None},
        "record": [
            {"type": "aborted", "at": at(40), "marker": "abort", "current_step": "b",
             "text": "ABORTED by bob at b, asking for the revert"},
            {"type": "reverted", "at": at(50), "marker": "ending", "current_step": "b",
             "text": "abort ended: reverted"},
        ],
        "steps": [
            {
                "id": "a",
                "status": "succeeded",
                "awaiting_at": at(0),
                "started_at": at(5),
                "ended_at": at(30),
                "runs": [
                    {"start": at(5), "end": at(10), "by": "alice", "how": "interrupted"},
                    {"start": at(20), "end": at(30), "by": "bob", "how": "succeeded"},
                ],
                "events": [
                    {"type": "refused", "at": at(2), "marker": "refusal"},
                    {"type": "interrupted", "at": at(10), "marker": "interruption"},
                    {"type": "retried", "at": at(20), "marker": "retry"},
                ],
            },
            {"id": "b", "status": "awaiting", "awaiting_at": at(35), "events": []},
        ],
    }  # fmt: skip
    page = to_html(doc)
    ticks = re.findall(r'<span class="tick" style="left:([\d.]+)%">([^<]+)</span>', page)
    assert [label for _, label in ticks] == [f"00:00:{s:02d}" for s in range(0, 51, 10)]
    assert [float(left) for left, _ in ticks] == pytest.approx([0, 20, 40, 60, 80, 100])
    rows = page.split('<tr class="step"')
    a, b = rows[1], rows[2]
    for kind, event, left in (("refusal", "refused", 4), ("interruption", "interrupted", 20),
                              ("retry", "retried", 40)):  # fmt: skip
        m = re.search(
            rf'class="marker marker-{kind}" data-event="{event}" style="left:([\d.]+)%"', a
        )
        assert m and float(m.group(1)) == pytest.approx(left), kind
    assert a.count('class="bar-running"') == 2
    assert 'class="marker marker-abort" data-event="aborted" style="left:80.000%"' in b
    wait = re.search(r'class="bar-waiting" style="left:([\d.]+)%;width:([\d.]+)%"', b)
    assert wait and (float(wait.group(1)), float(wait.group(2))) == pytest.approx((70, 10))
    restore = page.split('<tr class="restore-row"', 1)[1].split("</tr>", 1)[0]
    assert 'data-event="aborted"' in restore and 'data-event="reverted"' in restore
    assert '<section id="abort">' in page and "Aborted by <strong>bob</strong>" in page
    css = page.split("<style>", 1)[1].split("</style>", 1)[0]
    shapes = [re.search(rf"\.marker-{k}\{{([^}}]*)\}}", css) for k in
              ("abort", "interruption", "retry", "refusal", "ending")]  # fmt: skip
    assert all(shapes) and len({m.group(1) for m in shapes if m}) == 5

"""What hosts say stays inert and is read strictly: backup names (ASCII pattern, a real
date, not in the future; a name holding a newline is no backup), the archive the wipe
relies on (tar must read it whole and it must hold every file of the log; a failed
archive leaves no partial file), and Markdown exports (a fence longer than any run of
backticks in the output)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.wiring import connect
from runbook import transcript
from runbook.actions import Timing
from runbook.backups import is_backup, parse_names
from runbook.engine import Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.drive import ALICE, BOB, drive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=20, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2, start_wait=30
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "name, ok",
    [
        ("scheduler-backup-2026-12-01-11-00", True),
        ("scheduler-backup-2026-12-01-12-04", True),  # a clock a few minutes ahead
        ("scheduler-backup-2099-12-31-23-59", False),  # in the future
        ("scheduler-backup-2026-02-30-10-00", False),  # no such day
        ("scheduler-backup-2026-12-01-25-00", False),
        ("scheduler-backup-２０２６-12-01-11-00", False),  # fullwidth digits
        ("scheduler-backup-2026-12-01-11-00\nx", False),
        ("temp_scheduler-backup-2026-12-01-11-00", False),
        ("zzzz-scheduler-backup-2026-12-01-11-00", False),
        ("scheduler-backup-2026-12-01-11-00.bak", False),
    ],
)
def test_backup_names_are_read_strictly(name: str, ok: bool) -> None:
    assert is_backup(name, UTC, NOW) is ok


def test_a_name_holding_a_newline_stays_one_name() -> None:
    listing = "\0".join(
        ["scheduler-backup-2026-12-01-10-00\nscheduler-backup-2026-12-01-11-00", "x", ""]
    )
    backups, others = parse_names(listing.split("\0"), UTC, NOW)
    assert backups == []
    assert len(others) == 2


async def test_preflight_lists_what_is_not_a_backup_and_never_chooses_it(
    sandbox: RunningSandbox, store: Store
) -> None:
    s = sandbox.cluster.schedulers[0]
    backups = Path(sandbox.cluster.path(s, "backup_dir") or "")
    newest = sorted(p.name for p in backups.iterdir())[-1]
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("scheduler-backup-%Y-%m-%d-%H-%M")
    soon = (datetime.now(UTC) + timedelta(hours=20)).strftime("%Y-%m-%d-%H-%M")
    strays = [future, f"scheduler-backup-{soon}\nevil", "scheduler-backup-２０２６-01-01-00-00"]
    for name in strays:
        (backups / name).write_bytes(b"not a backup")
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, ALICE)
    await engine.advance(rid)
    rec = await engine.record(rid)
    assert rec.steps["prep.preflight"]["status"] == "succeeded", rec.steps["prep.preflight"]
    assert rec.data["backup"] not in strays
    assert rec.data["backup"] >= newest
    assert set(strays) <= set(rec.data["not_backups"])
    assert "not backups (ignored)" in rec.steps["prep.preflight"]["summary"]
    await engine.abort(rid, ALICE, revert=False)
    await engine.close()


async def test_a_garbage_archive_does_not_count_as_finished(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        lease_ms=2000,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "log.archive") == "at log.archive"
    rec = await engine.record(rid)
    stamp = rec.data["archive_stamp"]
    # The bot died while archiving and left 100 bytes that tar rejects on every host.
    for s in sandbox.cluster.schedulers:
        log_dir = Path(sandbox.cluster.path(s, "native_log_file_path") or "")
        Path(f"{log_dir}.aurora-restore-{stamp}.tar.gz").write_bytes(b"\x1f\x8b" + b"x" * 98)
    await store.transition(
        rid,
        "log.archive",
        ("awaiting",),
        {"status": "running", "attempt": 1, "lease_owner": "dead", "lease_until": 0},
        {"type": "approved", "actor": "alice"},
    )
    found = await engine.recover(rid)
    assert [sid for sid, _ in found] == ["log.archive"]
    outcome = found[0][1]
    assert outcome is not None and not outcome.ok
    assert "no archive that tar can read" in outcome.summary
    assert (await engine.record(rid)).steps["log.archive"]["appears_finished"] is False
    await engine.abort(rid, BOB, revert=True)
    await engine.close()


async def test_a_failed_archive_leaves_no_partial_file(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "log.archive") == "at log.archive"
    # tar writes half an archive, then fails (a disk filling up), on one host.
    s = sandbox.cluster.schedulers[1]
    bin_dir = Path(sandbox.info.host(s.host).root) / "usr/local/bin"
    (bin_dir / "tar").write_text(
        '#!/bin/bash\nif [ "$1" = -czf ]; then head -c 4096 /dev/urandom > "$2"; '
        'echo "tar: write error: No space left on device" >&2; exit 2; fi\nexec /bin/tar "$@"\n'
    )
    (bin_dir / "tar").chmod(0o755)
    out = await engine.approve(rid, "log.archive", ALICE)
    (bin_dir / "tar").unlink()
    assert not out.ok
    assert "archiving failed: the partial archive was removed" in out.summary
    rec = await engine.record(rid)
    log_dir = Path(sandbox.cluster.path(s, "native_log_file_path") or "")
    assert not Path(f"{log_dir}.aurora-restore-{rec.data['archive_stamp']}.tar.gz").exists()
    await engine.abort(rid, BOB, revert=True)
    await engine.close()


def test_markdown_fences_outlast_any_backticks_in_the_output() -> None:
    text = "ok\n```\n# Heading\n![img](http://x)\n<b>html</b>\n`````"
    lines = transcript.fence(text)
    assert lines[0] == "``````" and lines[-1] == "``````"
    assert lines[1] == text
    assert transcript.fence("plain") == ["```", "plain", "```"]

"""Choosing the backup, deleting staged tasks, and going back when the leader changed,
against the sandbox (real SSH, real aurora_admin stand-in) and a real Redis-protocol server.

One restore, start to finish:

* preflight lists the backups from every backup_dir and from `aurora_admin
  scheduler_list_backups`, and shows the leader table;
* another backup is chosen before anything changed (an old one brings
  `prep.ack_backup` back into the plan; a fresh one takes it out again); after
  `prep.stop` the choice is refused;
* at `restore.review`, task ids not in the listing are refused and change nothing;
  known ones are deleted with `scheduler_delete_recovery_tasks` and the listing is
  printed again, showing what changed;
* the leader changes after the review: `restore.commit` fails without running,
  offers to go back, retry is refused, and going back finds the new leader, places
  and stages the backup there; the restore then succeeds with the new reviewed count.
"""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema
import pytest

from bot.leader import detector
from runbook import transcript
from runbook.actions import backup_age, parse_backup_list
from runbook.engine import Actor, Refused
from runbook.listing import check_task_ids, listing_ids
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.store import Store
from runbook.transcript_html import to_html
from tests.conftest import RunningSandbox
from tests.test_engine import make_engine, status
from tests.test_transcript import SCHEMA

pytestmark = pytest.mark.timeout(300)

ALICE, BOB, MALLORY = Actor("alice"), Actor("bob"), Actor("mallory")
MAX_AGE = 4 * 3600  # the sandbox cluster's max_backup_age


def test_backup_list_and_task_ids_parsing() -> None:
    out = (
        "3 available backups:\n"
        "scheduler-backup-2018-06-29-15-36\n"
        "temp_scheduler-backup-2018-06-29-16-36\n"
        "scheduler-backup-2018-06-29-14-36\n"
        "scheduler-backup-garbage\n"
    )
    assert parse_backup_list(out) == [
        "scheduler-backup-2018-06-29-15-36",
        "scheduler-backup-2018-06-29-14-36",
    ]
    assert parse_backup_list("0 available backups:\n") == []

    known = {"www-data-prod-hello-0-a1", "www-data-prod-hello-1-b2", "ads-prod-x-0-c3"}
    ids, error = check_task_ids(
        " www-data-prod-hello-0-a1,ads-prod-x-0-c3\n\nwww-data-prod-hello-0-a1 ", known
    )
    assert error is None and ids == ["www-data-prod-hello-0-a1", "ads-prod-x-0-c3"]
    ids, error = check_task_ids("ads-prod-x-0-c3, nope-1", known)
    assert ids == [] and error == "Not in the staged listing: nope-1"
    ids, error = check_task_ids("ads-prod-x-0-c3\n$(reboot)", known)
    assert ids == [] and error == "Not task ids: $(reboot)"
    assert check_task_ids(" ,\n", known) == ([], "Give at least one task id.")


async def wait_for_leader(
    sandbox: RunningSandbox,
    not_on: str = "",
    state: str = "LEADER_AWAITING_REGISTRATION",
    timeout: float = 60,
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = await asyncio.to_thread(sandbox.leaders, state)
        if len(leaders) == 1 and leaders[0] != not_on:
            return leaders[0]
        await asyncio.sleep(0.3)
    raise AssertionError(f"no new leader: {sandbox.states()}")


async def test_choose_backup_delete_tasks_and_go_back_after_a_leader_change(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = make_engine(store, sandbox.cluster, detect=detector)
    await wait_for_leader(sandbox, state="ACTIVE")
    rid = await engine.start("sandbox", None, ALICE)
    await engine.advance(rid)
    rec = await engine.record(rid)
    assert rec.steps["prep.preflight"]["status"] == "succeeded"
    summary = rec.steps["prep.preflight"]["summary"]
    leader_now = rec.data["preflight_leader"]
    assert f"aurora-admin on {leader_now} lists" in summary
    assert rec.data["preflight_table"][leader_now]["vars"] == "leader"
    backups = rec.data["backups"]
    newest = rec.data["backup"]
    assert newest == max(backups)
    # aurora_admin lists the backup_dir of the scheduler it reaches: the leader's.
    listed = int(summary.split(f"aurora-admin on {leader_now} lists ")[1].split(";")[0])
    assert listed == len([b for b, hosts in backups.items() if leader_now in hosts]) > 0
    old = next(b for b in sorted(backups) if (backup_age(b) or 0) > MAX_AGE)
    fresh = next(b for b in sorted(backups, reverse=True) if b != newest)
    assert (backup_age(fresh) or MAX_AGE) < MAX_AGE

    # Refusals change nothing.
    before = await store.events(rid)
    with pytest.raises(Refused, match="mallory is not an approver"):
        await engine.choose_backup(rid, old, MALLORY)
    with pytest.raises(Refused, match="is not on any scheduler"):
        await engine.choose_backup(rid, "scheduler-backup-2000-01-01-00-00", ALICE)
    with pytest.raises(Refused, match="not a backup id"):
        await engine.choose_backup(rid, "scheduler-backup-1; reboot", ALICE)
    with pytest.raises(Refused, match="already the chosen backup"):
        await engine.choose_backup(rid, newest, ALICE)
    assert await store.events(rid) == before

    # An old backup: its age must be acknowledged before anything stops.
    await engine.choose_backup(rid, old, ALICE)
    rec = await engine.record(rid)
    assert rec.data["backup"] == old and rec.data["backup_too_old"] is True
    assert "prep.ack_backup" in rec.meta["plan"]
    assert await status(engine, rid, "prep.ack_backup") == "awaiting"
    assert await status(engine, rid, "prep.stop") == "pending"
    # A fresh one: the acknowledgement is not needed any more.
    await engine.choose_backup(rid, fresh, BOB)
    rec = await engine.record(rid)
    assert rec.data["backup"] == fresh and rec.data["backup_too_old"] is False
    assert "prep.ack_backup" not in rec.meta["plan"]
    assert await status(engine, rid, "prep.stop") == "awaiting"
    chosen = [e for e in await store.events(rid) if e["type"] == "backup_chosen"]
    assert [(e["actor"], e["backup"]) for e in chosen] == [("alice", old), ("bob", fresh)]

    await engine.approve(rid, "prep.stop", ALICE)
    with pytest.raises(Refused, match="only until prep.stop is approved"):
        await engine.choose_backup(rid, newest, ALICE)

    await engine.skip(rid, "prep.block_traffic", BOB, "no firewall in the sandbox")
    for sid in ("prep.admin_access", "prep.disable", "prep.start", "log.stop", "log.archive"):
        assert (await engine.approve(rid, sid, ALICE)).ok, sid
    assert (await engine.approve(rid, "log.wipe", BOB)).ok
    for sid in ("log.init", "log.start", "restore.place", "restore.stage"):
        assert (await engine.approve(rid, sid, ALICE)).ok, sid
    assert await status(engine, rid, "restore.review") == "awaiting"
    rec = await engine.record(rid)
    assert rec.data["staged_on"] == rec.data["leader"]
    review = rec.data["review"]
    ids = listing_ids(review["listing"])
    assert len(ids) == review["count"] > 2

    # Unknown or malformed ids: refused, nothing sent, nothing changed.
    before = await store.events(rid)
    with pytest.raises(Refused, match="^Not in the staged listing: no-such-task$"):
        await engine.delete_tasks(rid, [ids[0], "no-such-task"], ALICE)
    with pytest.raises(Refused, match=r"^Not task ids: x; rm -rf /$"):
        await engine.delete_tasks(rid, ["x; rm -rf /"], ALICE)
    with pytest.raises(Refused, match="mallory is not an approver"):
        await engine.delete_tasks(rid, ids[:1], MALLORY)
    assert await store.events(rid) == before

    out = await engine.delete_tasks(rid, ids[:2], BOB)
    assert out.ok, out.summary
    assert out.summary == f"2 of 2 tasks deleted; the listing now has {len(ids) - 2}"
    rec = await engine.record(rid)
    assert rec.steps["restore.review"]["status"] == "awaiting"
    after = rec.data["review"]
    assert after["count"] == len(ids) - 2
    assert set(listing_ids(after["listing"])) == set(ids[2:])
    (change,) = after["deletions"]
    assert change["removed"] == sorted(ids[:2]) and change["before"] == len(ids)
    assert change["still_there"] == [] and change["appeared"] == []
    events = [e for e in await store.events(rid) if e.get("step") == "restore.review"]
    deleting = next(e for e in events if e["type"] == "deleting_tasks")
    assert deleting["actor"] == "bob" and deleting["ids"] == ids[:2]
    done = next(e for e in events if e["type"] == "tasks_deleted")
    batch, reprint = done["commands"]  # the delete, then the listing printed again
    assert "scheduler_print_recovery_tasks" in reprint[rec.data["leader"]]
    assert (
        "scheduler_delete_recovery_tasks --bypass-leader-redirect sandbox"
        in batch[rec.data["leader"]]
    )
    assert ",".join(ids[:2]) in batch[rec.data["leader"]]

    assert (await engine.approve(rid, "restore.review", ALICE)).ok
    assert (await engine.record(rid)).data["reviewed_count"] == len(ids) - 2
    assert await status(engine, rid, "restore.commit") == "awaiting"

    # The leader goes away after the review: its staged recovery is gone with it.
    first_leader = rec.data["leader"]
    stopped = sandbox.ssh(first_leader, "sudo systemctl stop aurora-scheduler")
    assert stopped.returncode == 0, stopped.stderr
    new_leader = await wait_for_leader(sandbox, not_on=first_leader)
    started = sandbox.ssh(first_leader, "sudo systemctl start aurora-scheduler")
    assert started.returncode == 0, started.stderr

    commits_before = [e for e in await store.events(rid) if e.get("step") == "restore.commit"]
    with pytest.raises(Refused, match="did not run: the leader changed"):
        await engine.approve(rid, "restore.commit", BOB)
    rec = await engine.record(rid)
    commit = rec.steps["restore.commit"]
    assert commit["status"] == "failed" and commit["rewind"] == "restore.leader"
    assert "the leader changed" in commit["summary"]
    commit_events = [e for e in await store.events(rid) if e.get("step") == "restore.commit"]
    assert [e["type"] for e in commit_events[len(commits_before) :]] == ["failed"]
    assert not [e for e in commit_events if e["type"] == "host_result"]  # nothing was sent
    with pytest.raises(Refused, match="Back to restore.leader"):
        await engine.retry(rid, "restore.commit", BOB)
    with pytest.raises(Refused, match="mallory is not an approver"):
        await engine.rewind(rid, "restore.commit", MALLORY)

    # Going back, twice at once: one goes back, the other is refused.
    results = await asyncio.gather(
        engine.rewind(rid, "restore.commit", ALICE),
        engine.rewind(rid, "restore.commit", BOB),
        return_exceptions=True,
    )
    assert sorted(map(type, results), key=str) == sorted([str, Refused], key=str), results
    rec = await engine.record(rid)
    assert rec.steps["restore.leader"]["status"] == "succeeded"  # read-only: ran at once
    assert rec.data["leader"] == new_leader
    assert rec.steps["restore.place"]["status"] == "awaiting"
    for sid in ("restore.stage", "restore.review", "restore.commit"):
        assert rec.steps[sid]["status"] == "pending", sid
    assert [e["type"] for e in await store.events(rid)].count("rewound") == 1

    for sid in ("restore.place", "restore.stage"):
        assert (await engine.approve(rid, sid, ALICE)).ok, sid
    rec = await engine.record(rid)
    assert rec.data["staged_on"] == new_leader
    second = rec.data["review"]["count"]
    assert "deletions" not in rec.data["review"]  # a fresh staging: the whole backup
    assert (await engine.approve(rid, "restore.review", ALICE)).ok
    assert (await engine.approve(rid, "restore.commit", BOB)).ok
    for sid in ("cleanup.revert", "cleanup.restart"):
        assert (await engine.approve(rid, sid, ALICE)).ok, sid
    rec = await engine.record(rid)
    assert rec.status == "succeeded", {k: v["status"] for k, v in rec.steps.items()}
    assert rec.data["active_tasks"] == second == rec.data["reviewed_count"]
    assert "leader again" in rec.steps["restore.failover"]["summary"]
    assert "vars leader" in rec.steps["restore.failover"]["summary"]

    # The transcript keeps all of it, and still verifies against its own chain.
    doc = transcript.build(rec, await store.events(rid), await store.outputs(rid), ONLINE)
    jsonschema.validate(doc, SCHEMA)
    assert transcript.verify(json.loads(transcript.to_json(doc)), PROCEDURES) == []
    steps = {s["id"]: s for s in doc["steps"]}
    details = [
        (e["type"], e.get("detail", "")) for s in doc["steps"] for e in s["events"] if "detail" in e
    ]
    assert ("backup_chosen", f"{newest} → {old}") in details
    assert ("deleting_tasks", ", ".join(ids[:2])) in details
    assert ("rewound", "back from restore.commit") in details
    assert [e["type"] for e in steps["restore.commit"]["events"]].count("reset") == 1
    assert doc["preflight_leader_table"][leader_now]["vars"] == "leader"
    assert doc["failover_leader_table"]
    md = transcript.to_markdown(doc)
    assert "tasks deleted (listing " in md
    assert f"2 of 2 tasks deleted; the listing now has {len(ids) - 2}" in md
    (went_back,) = [e for e in await store.events(rid) if e["type"] == "rewound"]
    assert f"{went_back['actor']} went back to this step: ` back from restore.commit `" in md
    html = to_html(doc)
    assert '<li data-event="tasks_deleted">' in html and "back from restore.commit" in html
    await engine.close()

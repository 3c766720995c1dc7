"""Reminders of waiting approvals, posted into each restore's thread.

Every `serve`/`socket` process runs `Reminders.run_forever` on its work loop. Each tick
looks at the running restores; for a step that has waited for approval longer than its
cluster's `approvals.remind_after`, it posts once per interval a line that mentions the
approvers (`<!subteam^ID>` for each configured user group, `<@U…>` for each approver
user) and, for a destructive step under the two-person rule, names who could be the
second approver (the approvers other than the requester).

Once per interval across all processes: the process that wins a Redis
`SET ar:remind:<rid>:<step>:<since>:<n> NX PX …` posts; the others skip. `since` (the
step's last `awaiting_approval` event) is in the key, so a step that asks again starts
its intervals afresh. Time is the store's clock (`TIME`), the one events are stamped
with, so processes on different machines agree on the interval number.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.metrics import server_ms
from runbook.approvals import duration_text, interval_number, waiting_for
from runbook.clusters import Cluster
from runbook.procedure import Risk
from runbook.store import RestoreRecord

log = logging.getLogger(__name__)

SCAN_LIMIT = 200  # restores looked at per tick: the newest; running ones are among them
MAX_NAMED = 20  # at most this many possible second approvers are named


def remind_key(rid: str, sid: str, since_ms: int, n: int) -> str:
    return f"ar:remind:{rid}:{sid}:{since_ms}:{n}"


class Reminders:
    """Posts the reminders of one bot process. `front` is the SlackFront (its client,
    Redis and the restore's thread); `approvers` is bot.slack_front.Approvers, whose
    cached `usergroups.list` / `usergroups.users.list` lookups resolve the groups."""

    def __init__(self, front: Any, approvers: Any) -> None:
        self.front = front
        self.engine = front.engine
        self.redis = front.redis
        self.approvers = approvers

    async def tick(self, now_ms: int | None = None) -> int:
        """One look at every running restore; returns how many reminders this process
        posted. `now_ms` (tests) defaults to the store's clock."""
        now = now_ms if now_ms is not None else await server_ms(self.redis)
        posted = 0
        for rid in await self.engine.store.restore_ids(limit=SCAN_LIMIT):
            rec = await self.engine.store.load(rid)
            if rec is None or rec.status != "running":
                continue
            cluster = self.engine.clusters.get(rec.meta.get("cluster", ""))
            if cluster is None:
                continue
            every = cluster.approvals.remind_after_ms
            for sid, since in waiting_for(rec, await self.engine.store.events(rid)):
                n = interval_number(now, since, every)
                if n == 0:
                    continue
                # Held for two intervals: past the end of this one on every clock.
                won = await self.redis.set(
                    remind_key(rid, sid, since, n), "1", nx=True, px=2 * every
                )
                if not won:
                    continue
                if await self._post(rec, cluster, sid, now - since):
                    posted += 1
        return posted

    async def _post(self, rec: RestoreRecord, cluster: Cluster, sid: str, waited_ms: int) -> bool:
        where = await self.front.thread(rec.rid)
        if where is None:
            return False
        text = await self.text(rec, cluster, sid, waited_ms)
        try:
            await self.front.client.chat_postMessage(
                channel=where[0], thread_ts=where[1], text=text
            )
        except SlackApiError as exc:
            log.warning(
                "cannot post the reminder for %s of %s: %s", sid, rec.rid, exc.response.get("error")
            )
            return False
        return True

    async def text(self, rec: RestoreRecord, cluster: Cluster, sid: str, waited_ms: int) -> str:
        """The reminder: who is asked, and for a destructive step who could be second."""
        mentions = [f"<@{u}>" for u in cluster.approvers.users]
        group_ids = await self._group_ids(cluster)
        mentions += [f"<!subteam^{gid}>" for gid in group_ids]
        line = (
            f":alarm_clock: `{sid}` has waited {duration_text(waited_ms)} for approval"
            f" (restore `{rec.rid}` of {cluster.name})."
        )
        if mentions:
            line += " " + " ".join(mentions) + ": please approve or skip it in this thread."
        step = self.engine.step(sid, rec)
        requester = str(rec.meta.get("started_by", ""))
        if step.risk is Risk.DESTRUCTIVE and cluster.two_person_rule:
            others = await self._second_approvers(cluster, group_ids, requester)
            if others:
                named = " ".join(f"<@{u}>" for u in others[:MAX_NAMED])
                more = f" and {len(others) - MAX_NAMED} more" if len(others) > MAX_NAMED else ""
                line += f" It is destructive: someone other than <@{requester}> approves it: {named}{more}."
            else:
                line += (
                    f" It is destructive and needs an approver other than <@{requester}>:"
                    " there is none among the cluster's approvers."
                )
        return line

    async def _group_ids(self, cluster: Cluster) -> list[str]:
        if not cluster.approvers.groups:
            return []
        try:
            ids: dict[str, str] = await self.approvers._group_ids()
        except SlackApiError as exc:
            log.warning("cannot read user groups: %s", exc.response.get("error"))
            return []
        return [ids[h.lstrip("@")] for h in cluster.approvers.groups if h.lstrip("@") in ids]

    async def _second_approvers(
        self, cluster: Cluster, group_ids: list[str], requester: str
    ) -> list[str]:
        people = list(dict.fromkeys(cluster.approvers.users))
        for gid in group_ids:
            try:
                members: set[str] = await self.approvers._members_of(gid)
            except SlackApiError as exc:
                log.warning("cannot read user group %s: %s", gid, exc.response.get("error"))
                continue
            people += sorted(m for m in members if m not in people)
        return [p for p in people if p != requester]

    async def run_forever(self, every: float | None = None) -> None:
        """`tick` every `every` seconds (default: a quarter of the shortest remind_after,
        between 1 and 30 s), until cancelled; one log line per run of failures."""
        if every is None:
            shortest = min(
                (c.approvals.remind_after_ms for c in self.engine.clusters.values()),
                default=60_000,
            )
            every = min(max(shortest / 4000, 1.0), 30.0)
        failing = False
        while True:
            try:
                await self.tick()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("the approval reminders failed: %s: %s", type(exc).__name__, exc)
                failing = True
            await asyncio.sleep(every)

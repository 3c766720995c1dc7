"""The scheduled readiness check: `aurora-restore check` on a cluster every `every`.

A cluster whose file has `[clusters.X.readiness] channel = "C…"`, `every = "7d"` gets
the check of bot.check run by the bot itself. Every `serve`/`socket` process runs
`ReadinessSchedule.run_forever` on its work loop (like bot.reminders); each tick, for each
such cluster:

- due when the last run (`ar:readiness:<cluster>:last`, the store's clock in ms) is
  `every` or more ago, or there was none;
- one run per period across the processes: the process that wins
  `SET ar:readiness:<cluster>:<n> 1 NX PX every` runs it, the others skip. `n` is the
  number of the period after the last run's (`last // every + 1`; 0 for the first run),
  so every process that read the same `last` names the same key, whatever its own
  `now`; the winner writes the new `last` before the check starts;
- the rows (name, host, ok, cause: what the table shows, see `digest`) are digested into `ar:readiness:<cluster>:digest`;
  the table (bot.check.slack_text) goes into the channel only when a row failed or the
  digest differs from the last run's: a healthy cluster that stays healthy is quiet;
- a check that raises posts one line with the reason (redacted) and logs one line.

Read-only like the command: no restore, no lock (runbook.readiness).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.check import check_cluster, slack_text
from bot.metrics import server_ms
from runbook.clusters import Cluster
from runbook.readiness import Check
from runbook.redact import redact

log = logging.getLogger(__name__)

PAREN_TAIL = re.compile(r" \([^()]*\)$")
REASON_LIMIT = 300  # characters of an exception's text in the one line posted


def last_key(cluster: str) -> str:
    return f"ar:readiness:{cluster}:last"


def digest_key(cluster: str) -> str:
    return f"ar:readiness:{cluster}:digest"


def run_key(cluster: str, n: int) -> str:
    return f"ar:readiness:{cluster}:{n}"


def period_after(last_ms: int | None, every_ms: int) -> int:
    """The number of the run after one at `last_ms`: 0 for the first run."""
    return 0 if last_ms is None else last_ms // every_ms + 1


def digest(rows: list[Check]) -> str:
    """sha256 of the rows' names, hosts, results and causes, in order: of what a person
    is told. A passing row's cause is not shown (free space, a backup's age, the
    preflight's lines change from run to run) and its name loses a `(…)` tail (the
    newest backup's id, new with every backup): neither is news."""
    data = [
        [PAREN_TAIL.sub("", r.name), r.host, True, ""] if r.ok else [r.name, r.host, False, r.cause]
        for r in rows
    ]
    return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


def _int(raw: Any) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class ReadinessSchedule:
    """The scheduled checks of one bot process. `front` is the SlackFront: its engine
    (clusters, connect, leader detection), client and Redis."""

    def __init__(self, front: Any) -> None:
        self.front = front
        self.engine = front.engine
        self.redis = front.redis

    def clusters(self) -> list[Cluster]:
        return [c for c in self.engine.clusters.values() if c.readiness is not None]

    async def tick(self, now_ms: int | None = None) -> list[str]:
        """One look at every scheduled cluster; returns the clusters this process
        checked. `now_ms` (tests) defaults to the store's clock."""
        now = now_ms if now_ms is not None else await server_ms(self.redis)
        won = [c for c in self.clusters() if await self._claim(c, now)]
        await asyncio.gather(*(self.run(c) for c in won))
        return [c.name for c in won]

    async def _claim(self, cluster: Cluster, now: int) -> bool:
        """True when a run is due and this process won it (and wrote the new `last`)."""
        assert cluster.readiness is not None
        every = cluster.readiness.every_ms
        last = _int(await self.redis.get(last_key(cluster.name)))
        if last is not None and now - last < every:
            return False
        key = run_key(cluster.name, period_after(last, every))
        if not await self.redis.set(key, "1", nx=True, px=every):
            return False
        await self.redis.set(last_key(cluster.name), str(now))
        return True

    async def run(self, cluster: Cluster) -> bool:
        """Check `cluster` now; post when something failed or changed. True: posted."""
        assert cluster.readiness is not None
        name = cluster.name
        remote, probe = self.engine.connect(cluster)  # its own connections, closed by check
        try:
            rows = await check_cluster(
                cluster,
                remote,
                probe,
                detect=self.engine.detect,
                sources=self.engine.sources,
                mesos=self.engine.mesos,
            )
        except Exception as exc:  # one line, never a traceback
            reason = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], REASON_LIMIT)
            log.warning("the scheduled readiness check of %s could not run: %s", name, reason)
            await self.redis.set(digest_key(name), "error")
            return await self._post(
                cluster, f":x: The scheduled readiness check of `{name}` could not run: {reason}"
            )
        new = digest(rows)
        old = await self.redis.getset(digest_key(name), new)
        old_text = old.decode() if isinstance(old, bytes) else old
        if all(r.ok for r in rows) and old_text == new:
            return False
        running = await self.engine.store.holder(name)
        return await self._post(cluster, slack_text(name, rows, running))

    async def _post(self, cluster: Cluster, text: str) -> bool:
        assert cluster.readiness is not None
        try:
            await self.front.client.chat_postMessage(channel=cluster.readiness.channel, text=text)
        except SlackApiError as exc:
            log.warning(
                "cannot post the readiness check of %s into %s: %s",
                cluster.name,
                cluster.readiness.channel,
                exc.response.get("error"),
            )
            return False
        return True

    async def run_forever(self, every: float | None = None) -> None:
        """`tick` every `every` seconds (default: a quarter of the shortest `every`,
        between 1 and 60 s) until cancelled; returns at once when no cluster has a
        schedule. One log line per run of failures."""
        scheduled = self.clusters()
        if not scheduled:
            return
        if every is None:
            shortest = min(c.readiness.every_ms for c in scheduled if c.readiness)
            every = min(max(shortest / 4000, 1.0), 60.0)
        failing = False
        while True:
            try:
                await self.tick()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning(
                        "the scheduled readiness checks failed: %s: %s", type(exc).__name__, exc
                    )
                failing = True
            await asyncio.sleep(every)

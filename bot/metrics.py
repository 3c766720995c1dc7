"""Metrics for Prometheus: `GET /metrics` on the `serve` HTTP server.

The official client (`prometheus_client`), on a registry of our own (`REGISTRY`, not the
library's global one, so nothing else registers into what we expose). What is measured:

- `aurora_restore_restores{status}`: restores by status, read from the store at each
  scrape (the newest `SCRAPE_LIMIT` restores: bounded work);
- `aurora_restore_approval_waiting_seconds{restore,cluster,step}`: how long each running
  restore's awaiting step has waited so far (at scrape); and
  `aurora_restore_approval_wait_seconds{step,outcome}`: the waits that ended (approved,
  skipped), a histogram;
- `aurora_restore_step_duration_seconds{step,outcome}`: how long steps ran;
- `aurora_restore_ssh_command_seconds{host}` and
  `aurora_restore_ssh_command_failures_total{host}`: remote commands (a failure is a
  command that could not run or finish: unreachable, timed out; a non-zero exit status
  is an answer, not a failure);
- `aurora_restore_slack_api_errors_total{method,error}` and
  `aurora_restore_slack_api_retries_total{reason}`;
- `aurora_restore_store_seconds{op}`: the store's scripts (each transition is one).

Each process counts what it did; the gauges read from the store are the same in every
process (scrape one, or `max by` over them).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler

from runbook import store as store_mod
from runbook.approvals import waiting_for
from runbook.events import EventKind

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_LIMIT = 500  # restores read per scrape: the newest; running ones are among them

REGISTRY = CollectorRegistry(auto_describe=True)

STEP_SECONDS = Histogram(
    "aurora_restore_step_duration_seconds",
    "How long a step ran, by step id and outcome (succeeded, failed).",
    ["step", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
APPROVAL_WAIT_SECONDS = Histogram(
    "aurora_restore_approval_wait_seconds",
    "How long a step waited for approval, for waits that ended (approved, skipped).",
    ["step", "outcome"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
SSH_SECONDS = Histogram(
    "aurora_restore_ssh_command_seconds",
    "How long a remote command took over SSH (connecting included), by host.",
    ["host"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
SSH_FAILURES = Counter(
    "aurora_restore_ssh_command_failures",
    "Remote commands that could not run or finish (unreachable, timed out), by host.",
    ["host"],
    registry=REGISTRY,
)
SLACK_ERRORS = Counter(
    "aurora_restore_slack_api_errors",
    "Slack Web API calls that failed, by method and error (Slack's error code, or "
    "the exception's type when Slack could not be reached).",
    ["method", "error"],
    registry=REGISTRY,
)
SLACK_RETRIES = Counter(
    "aurora_restore_slack_api_retries",
    "Slack Web API calls retried, by reason (rate_limited, server_error, connection_error).",
    ["reason"],
    registry=REGISTRY,
)
STORE_SECONDS = Histogram(
    "aurora_restore_store_seconds",
    "How long a store script took (retries during an outage included), by script.",
    ["op"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
    registry=REGISTRY,
)


# ------------------------------------------------------------ what adapters call


def observe_command(host: str, seconds: float, ok: bool) -> None:
    """One remote command on `host` (bot/ssh.py calls this for every result)."""
    SSH_SECONDS.labels(host).observe(seconds)
    if not ok:
        SSH_FAILURES.labels(host).inc()


def observe_step(step: str, seconds: float, ok: bool) -> None:
    STEP_SECONDS.labels(step, "succeeded" if ok else "failed").observe(seconds)


def observe_store(op: str, seconds: float) -> None:
    STORE_SECONDS.labels(op).observe(seconds)


_SCRIPTS = {
    store_mod.TRANSITION: "transition",
    store_mod.RENEW: "renew",
    store_mod.RESTORE_EVENT: "restore_event",
    store_mod.CREATE: "create",
}


def instrument_store(store: store_mod.Store) -> None:
    """Time every script the store runs (`Store._run`), on this instance."""
    inner = store._run

    @functools.wraps(inner)
    async def timed(script: str, keys: list[str], args: list[Any]) -> Any:
        started = time.monotonic()
        try:
            return await inner(script, keys, args)
        finally:
            observe_store(_SCRIPTS.get(script, "other"), time.monotonic() - started)

    store._run = timed  # type: ignore[method-assign]


class _CountingRetries(AsyncRetryHandler):
    """A retry handler of slack_sdk's, counted each time it decides to retry."""

    def __init__(self, inner: AsyncRetryHandler, reason: str) -> None:
        super().__init__(
            max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator
        )
        self.inner = inner
        self.reason = reason

    async def can_retry_async(self, **kwargs: Any) -> bool:
        return await self.inner.can_retry_async(**kwargs)

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        SLACK_RETRIES.labels(self.reason).inc()
        await self.inner.prepare_for_next_attempt_async(**kwargs)


def _reason(handler: AsyncRetryHandler) -> str:
    name = type(handler).__name__
    if "RateLimit" in name:
        return "rate_limited"
    if "ServerError" in name:
        return "server_error"
    if "Connection" in name:
        return "connection_error"
    return name


def instrument_slack(client: Any) -> None:
    """Count a Slack client's failed calls (by method and error) and its retries."""
    client.retry_handlers[:] = [
        h if isinstance(h, _CountingRetries) else _CountingRetries(h, _reason(h))
        for h in client.retry_handlers
    ]
    inner: Callable[..., Awaitable[Any]] = client.api_call
    if getattr(inner, "_counted", False):
        return

    @functools.wraps(inner)
    async def counted(api_method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await inner(api_method, *args, **kwargs)
        except SlackApiError as exc:
            SLACK_ERRORS.labels(api_method, str(exc.response.get("error", "unknown"))).inc()
            raise
        except Exception as exc:
            SLACK_ERRORS.labels(api_method, type(exc).__name__).inc()
            raise

    counted._counted = True  # type: ignore[attr-defined]
    client.api_call = counted


# ------------------------------------------------------------ the engine's events


class StepTimer:
    """Listens to the engine (chained before the front's listener): times each step
    from `running` to `succeeded`/`failed` in this process, and, when a step is approved or
    skipped, how long it waited (from its last `awaiting_approval` event in the store)."""

    def __init__(self, store: store_mod.Store) -> None:
        self.store = store
        self._started: dict[tuple[str, str], float] = {}

    async def on_event(self, kind: str, info: dict[str, Any]) -> None:
        rid, step = str(info.get("rid", "")), str(info.get("step", ""))
        if not rid or not step:
            return
        if kind == "running":
            self._started[(rid, step)] = time.monotonic()
        elif kind in (EventKind.SUCCEEDED, EventKind.FAILED):
            started = self._started.pop((rid, step), None)
            if started is not None:
                observe_step(step, time.monotonic() - started, bool(info.get("ok")))
        elif kind in ("approved", "skipped"):
            await self._wait_ended(rid, step, kind)

    async def _wait_ended(self, rid: str, step: str, outcome: str) -> None:
        since = end = None
        for e in await self.store.events(rid):
            if e.get("step") != step:
                continue
            if e.get("type") == "awaiting_approval":
                since, end = int(e["at"]), None
            elif e.get("type") == outcome and since is not None:
                end = int(e["at"])
        if since is not None and end is not None:
            APPROVAL_WAIT_SECONDS.labels(step, outcome).observe((end - since) / 1000)


def watch(engine: Any) -> StepTimer:
    """Chain a StepTimer before the engine's listener (the front's display)."""
    timer = StepTimer(engine.store)
    shown = engine.listener

    async def listener(kind: str, info: dict[str, Any]) -> None:
        try:
            await timer.on_event(kind, info)
        except Exception as exc:  # a metric lost, never the display or the restore
            log.warning("metrics: %s on %s: %s", type(exc).__name__, kind, exc)
        if shown is not None:
            res = shown(kind, info)
            if hasattr(res, "__await__"):
                await res

    engine.listener = listener
    return timer


# ------------------------------------------------------------ at scrape


class StoreGauges(Collector):
    """The gauges read from the store: filled by `refresh`, yielded at collect."""

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.waiting: list[tuple[str, str, str, float]] = []  # rid, cluster, step, seconds

    def collect(self) -> Iterable[Metric]:
        restores = GaugeMetricFamily(
            "aurora_restore_restores",
            f"Restores kept in the store by status (the newest {SCRAPE_LIMIT}).",
            labels=["status"],
        )
        for status in ("running", "succeeded", "failed", "aborted"):
            self.statuses.setdefault(status, 0)
        for status, n in sorted(self.statuses.items()):
            restores.add_metric([status], n)
        yield restores
        waiting = GaugeMetricFamily(
            "aurora_restore_approval_waiting_seconds",
            "How long the awaiting step of each running restore has waited for approval.",
            labels=["restore", "cluster", "step"],
        )
        for rid, cluster, step, seconds in self.waiting:
            waiting.add_metric([rid, cluster, step], seconds)
        yield waiting

    async def refresh(self, store: store_mod.Store) -> None:
        statuses: dict[str, int] = {}
        waiting: list[tuple[str, str, str, float]] = []
        ids = await store.restore_ids(limit=SCRAPE_LIMIT)
        pipe = store.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hget(store_mod.restore_key(rid), "status")
        raw = await pipe.execute() if ids else []
        now_ms = await server_ms(store.redis)
        for rid, status in zip(ids, raw, strict=True):
            if status is None:
                continue  # expired
            text = status.decode() if isinstance(status, bytes) else str(status)
            statuses[text] = statuses.get(text, 0) + 1
            if text != "running":
                continue
            rec = await store.load(rid)
            if rec is None:
                continue
            for sid, since in waiting_for(rec, await store.events(rid)):
                cluster = str(rec.meta.get("cluster", ""))
                waiting.append((rid, cluster, sid, max(0, now_ms - since) / 1000))
        self.statuses, self.waiting = statuses, waiting


GAUGES = StoreGauges()
REGISTRY.register(GAUGES)


async def server_ms(redis: Any) -> int:
    """The store's clock in ms: the clock the events' `at` are written with."""
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def scrape(store: store_mod.Store) -> bytes:
    """The text of `GET /metrics`: the store's gauges read now, then every metric."""
    await GAUGES.refresh(store)
    return generate_latest(REGISTRY)

"""`GET /metrics`: the app's own registry in Prometheus text format, parsed with the
official client's parser. A step that ran moves the step-duration histogram; the store's
gauges (restores by status, the wait of an awaiting step) are read at scrape; a Slack
retry and a Slack error are counted."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError

from bot import settings as bot_settings
from bot.redis_server import EmbeddedRedis
from bot.slack_app import build, web_app
from runbook.clusters import Cluster
from runbook.engine import Actor
from runbook.ports import HostResult, OnResult
from tests.conftest import free_port
from tests.slack_double import SlackDouble

pytestmark = pytest.mark.timeout(120)

SECRET = "metrics-signing-secret"
ALICE = "U0ALICE"
FAMILIES = {
    "aurora_restore_restores": "gauge",
    "aurora_restore_approval_waiting_seconds": "gauge",
    "aurora_restore_approval_wait_seconds": "histogram",
    "aurora_restore_step_duration_seconds": "histogram",
    "aurora_restore_ssh_command_seconds": "histogram",
    "aurora_restore_ssh_command_failures": "counter",
    "aurora_restore_slack_api_errors": "counter",
    "aurora_restore_slack_api_retries": "counter",
    "aurora_restore_store_seconds": "histogram",
}


class FailingRemote:
    """Stands in for SSH and /vars: every command fails (so preflight fails)."""

    def __call__(self, cluster: Cluster) -> tuple[Any, Any]:
        return self, self

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        out = {}
        for host in commands:
            out[host] = HostResult(host, None, "", "", 0.0, "unreachable (test)")
            if on_result is not None:
                maybe = on_result(out[host])
                if asyncio.iscoroutine(maybe):
                    await maybe
        return out

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        raise OSError(f"{host}: unreachable (test)")

    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, str] | str]:
        return {host: "unreachable (test)" for host in endpoints}

    async def close(self) -> None:
        return None


def placeholder(path: Path) -> Path:
    """A file that exists but is no SSH key or known host: the restore may start (the
    engine refuses one whose files are missing) and its first SSH step fails."""
    if not path.exists():
        path.write_text("not a key\n")
    return path


def cluster_file(path: Path) -> Path:
    text = ""
    for name in ("west", "east"):
        text += f"""
[clusters.{name}]
[clusters.{name}.ssh]
key = "{placeholder(path.parent / "no-key")}"
known_hosts = "{placeholder(path.parent / "known_hosts")}"
[clusters.{name}.approvers]
users = ["{ALICE}"]
[[clusters.{name}.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
ssh_port = {free_port()}
http_port = {free_port()}
"""
    path.write_text(text)
    return path


def samples(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Family name → its samples (name, labels, value); the families' types checked."""
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in FAMILIES:
            assert family.type == FAMILIES[family.name], family.name
        out[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return out


async def drain(bot: Any) -> None:
    """Until the work after the events (card refreshes) is done."""
    for _ in range(600):
        if not bot.front.tasks and all(f.done() for f in bot.front._pending.values()):
            return
        await asyncio.sleep(0.05)


def value(found: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    for name, have, v in found.get(family, []):
        if name == sample and all(have.get(k) == want for k, want in labels.items()):
            return float(v)
    return 0.0


async def test_metrics_are_scraped_and_move(tmp_path: Path) -> None:
    double = SlackDouble()
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(cluster_file(tmp_path / "c.toml")),
        }
    )
    bot = build(settings, url, remote=FailingRemote())
    client = TestClient(TestServer(web_app(bot, SECRET)))
    await client.start_server()

    async def scrape() -> dict[str, Any]:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(await resp.text())

    try:
        before = await scrape()
        assert set(FAMILIES) <= set(before), sorted(set(FAMILIES) - set(before))
        ran = dict(step="prep.preflight", outcome="failed")
        runs_before = value(
            before,
            "aurora_restore_step_duration_seconds",
            "aurora_restore_step_duration_seconds_count",
            **ran,
        )

        # west: preflight runs (and fails: no host answers), which ends the restore.
        engine = bot.engine
        rid = await bot.front.call(engine.start("west", None, Actor(ALICE)))
        await bot.front.call(engine.advance(rid))
        # east: log.wipe waits for approval.
        east = await bot.front.call(engine.start("east", None, Actor(ALICE)))
        await bot.front.call(
            engine.store.transition(
                east,
                "log.wipe",
                ("pending",),
                {"status": "awaiting"},
                {"type": "awaiting_approval", "risk": "destructive"},
            )
        )
        # Slack: one 500 (retried), one error.
        double.channels = {"C0OPS"}
        double.fail_next("chat.postMessage", status=500)
        await bot.front.call(bot.front.client.chat_postMessage(channel="C0OPS", text="hello"))
        with pytest.raises(SlackApiError):
            await bot.front.call(bot.front.client.chat_postMessage(channel="C0NOWHERE", text="x"))

        after = await scrape()
        assert (
            value(
                after,
                "aurora_restore_step_duration_seconds",
                "aurora_restore_step_duration_seconds_count",
                **ran,
            )
            == runs_before + 1
        )
        assert (
            value(after, "aurora_restore_restores", "aurora_restore_restores", status="failed") == 1
        )
        assert (
            value(after, "aurora_restore_restores", "aurora_restore_restores", status="running")
            == 1
        )
        waiting = [labels for _, labels, _ in after["aurora_restore_approval_waiting_seconds"]]
        assert waiting == [{"restore": east, "cluster": "east", "step": "log.wipe"}]
        assert (
            value(
                after,
                "aurora_restore_slack_api_retries",
                "aurora_restore_slack_api_retries_total",
                reason="server_error",
            )
            >= 1
        )
        assert (
            value(
                after,
                "aurora_restore_slack_api_errors",
                "aurora_restore_slack_api_errors_total",
                method="chat.postMessage",
                error="channel_not_found",
            )
            >= 1
        )
        assert value(
            after,
            "aurora_restore_store_seconds",
            "aurora_restore_store_seconds_count",
            op="transition",
        ) > value(
            before,
            "aurora_restore_store_seconds",
            "aurora_restore_store_seconds_count",
            op="transition",
        )
        await drain(bot)
    finally:
        await client.close()
        await bot.close()
        server.stop()
        await double.stop()

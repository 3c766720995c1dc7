"""Assembling the Slack app: one async Bolt app over the engine, in HTTP or Socket Mode.

HTTP mode serves commands, interactivity and events at `POST /slack/events`, and
`GET /healthz`. Redelivered requests (`X-Slack-Retry-Num` > 0) are answered 200 and
dropped: the first delivery is already being handled, and every engine transition is
atomic anyway, so a double click or two app processes never run a step twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.console import connect
from bot.leader import detector
from bot.settings import Settings
from bot.slack_front import Approvers, SlackFront
from bot.worker import WorkLoop
from handlers import actions, commands
from runbook.engine import Engine
from runbook.store import Store

log = logging.getLogger(__name__)


def web_client(settings: Settings) -> AsyncWebClient:
    # One HTTP session for every call (Bolt copies it into its per-request clients):
    # a new session per call costs more than the call.
    session = aiohttp.ClientSession()
    client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url, session=session)
    # 429: wait Retry-After; 5xx: back off and retry. A restore never dies of a Slack blip.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=5))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=5))
    return client


@dataclass
class Bot:
    app: AsyncApp
    front: SlackFront
    engine: Engine
    redis: Any
    work: WorkLoop

    async def _close_work(self) -> None:
        # Running steps are not waited for: their leases run out and they come back as
        # `interrupted`, for a person to decide, after the restart.
        await self.engine.close()
        await self.redis.aclose()
        session = self.front.client.session
        if session is not None:
            await session.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.work.run(self._close_work())
        self.work.stop()


async def _skip_redeliveries(
    request: Any, next: Callable[[], Awaitable[BoltResponse]]
) -> BoltResponse:
    retry = (request.headers.get("x-slack-retry-num") or ["0"])[0]
    if retry and retry.isdigit() and int(retry) > 0:
        return BoltResponse(status=200, body="")
    return await next()


def build(settings: Settings, redis_url: str, *, worker: str | None = None) -> Bot:
    """The Bolt app on the calling loop; the engine and its clients on a work loop."""
    work = WorkLoop()

    async def make() -> tuple[AsyncWebClient, Any]:
        return web_client(settings), aioredis.Redis.from_url(redis_url)

    client, redis = work.submit(make()).result()
    # The listeners' own client (views.open within the trigger's 3 seconds) stays on the
    # app's loop, with its own sessions.
    listener_client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url)
    app = AsyncApp(
        client=listener_client, signing_secret=settings.signing_secret or "unused-in-socket-mode"
    )
    app.middleware(_skip_redeliveries)
    approvers = Approvers(client)
    engine = Engine(
        Store(redis), settings.clusters, connect, may_approve=approvers.may_approve, detect=detector
    )
    if worker:
        engine.worker = worker
    front = SlackFront(engine, client, redis, work)
    commands.register(app, front)
    actions.register(app, front)
    return Bot(app, front, engine, redis, work)


async def resume(bot: Bot) -> None:
    """After a restart: steps whose worker died become interrupted; threads are refreshed."""
    for rid in await bot.engine.store.restore_ids():
        rec = await bot.engine.store.load(rid)
        if rec is None or rec.status != "running":
            continue
        with contextlib.suppress(Exception):
            await bot.engine.recover(rid)
            await bot.engine.advance(rid)
            bot.front.schedule_refresh(rid)


def web_app(bot: Bot) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await bot.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        try:
            await bot.work.run(bot.redis.ping())
        except Exception:
            return web.json_response({"ok": False, "redis": "unreachable"}, status=503)
        return web.json_response({"ok": True})

    application = web.Application()
    application.router.add_post("/slack/events", events)
    application.router.add_get("/healthz", healthz)
    return application


async def serve(
    settings: Settings, redis_url: str, *, host: str = "0.0.0.0", sock: socket.socket | None = None
) -> None:
    bot = build(settings, redis_url)
    await bot.work.run(resume(bot))
    runner = web.AppRunner(web_app(bot))
    await runner.setup()
    site: web.BaseSite = (
        web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, settings.port)
    )
    await site.start()
    log.info("listening on %s", f"{host}:{settings.port}" if sock is None else sock.getsockname())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.close()


async def socket_mode(settings: Settings, redis_url: str) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    bot = build(settings, redis_url)
    await bot.work.run(resume(bot))
    handler = AsyncSocketModeHandler(bot.app, settings.app_token)
    try:
        await handler.start_async()  # type: ignore[no-untyped-call]
    finally:
        await bot.close()

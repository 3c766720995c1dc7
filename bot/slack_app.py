"""Assembling the Slack app: one async Bolt app over the engine, in HTTP or Socket Mode.

HTTP mode serves commands and interactivity at `POST /slack/events`, and `GET /healthz`.
Every request is verified before anything of it is read (`X-Slack-Signature` over the raw
body, `X-Slack-Request-Timestamp` within five minutes, at most `MAX_BODY` bytes):
unsigned or forged → 401, and nothing is parsed. A signed request that is not what Slack
sends us (not UTF-8, not a form, `payload` not a JSON object, a field missing) → 400 and
one log line. Only then does Bolt see it, rebuilt from the checked fields alone
(`handlers.shapes.canonical`), so no listener meets a shape it did not expect.

A redelivery is recognised by what it carries (`handlers.shapes.delivery_key`),
remembered in Redis for ten minutes (`SET NX EX`), not by `X-Slack-Retry-Num`: a first
delivery that carries the header (Slack's first attempt timed out) is handled, a true
duplicate is acked and dropped. Every engine transition is atomic anyway, so a double
click or two app processes never run a step twice.

A listener that fails is logged in one line with a reference, and the person who asked
is told ("Something went wrong (ref …); nothing more was done; the bot log has the
details"): before the ack by Bolt's error handler (`on_error`: the slash command's reply,
the modal's error, or an ephemeral message), after it by the listener's own boundary
(`handlers.common.after_ack`: an ephemeral message in the restore's thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics, wiring
from bot.readiness_schedule import ReadinessSchedule
from bot.reminders import Reminders
from bot.settings import Settings
from bot.slack_front import SOMETHING_WRONG, Approvers, SlackFront, TokenBucket
from bot.worker import WorkLoop
from handlers import actions, commands, shapes
from runbook.engine import Connect, Engine
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
    metrics.instrument_slack(client)
    return client


class _ClientGivenOnPurpose(logging.Filter):
    """Bolt warns "As you gave `client` as well, `token` will be unused" whenever
    SLACK_BOT_TOKEN is in the environment (AsyncApp reads it as its default `token`)
    and a client is given: ours is that same token with our base URL, on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_ClientGivenOnPurpose())


@dataclass
class Bot:
    app: AsyncApp
    front: SlackFront
    engine: Engine
    redis: Any
    work: WorkLoop
    reminders: Reminders

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
        if not self.work.thread.is_alive():
            self.work.loop.close()


DELIVERY_TTL = 600  # seconds a delivery is remembered: Slack redelivers within minutes
MAX_BODY = 1024 * 1024  # the largest body read; Slack's biggest payloads are far smaller
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$", re.ASCII)
SIGNATURE_RE = re.compile(r"^v0=[0-9a-f]{64}$", re.ASCII)


def delivery_key(key: str) -> str:
    return f"ar:delivery:{key}"


class RawBodyVerifier(SignatureVerifier):
    """slack_sdk's verifier (the five-minute window, the constant-time comparison) over
    the raw bytes: a body that is not UTF-8 is verified too, and then refused as 400
    when signed, 401 when not, instead of failing to decode before the check."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        raw = body if isinstance(body, bytes) else body.encode()
        base = b"v0:" + timestamp.encode() + b":" + raw
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed(verifier: SignatureVerifier, headers: Any, body: bytes) -> bool:
    """Slack's signature over this body, made within five minutes; headers checked first
    (a timestamp that is not a number is simply not signed)."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not TIMESTAMP_RE.fullmatch(timestamp) or not SIGNATURE_RE.fullmatch(signature):
        return False
    return verifier.is_valid(body, timestamp, signature)


def checked_body(raw: bytes) -> dict[str, Any] | None:
    """A verified body as the request's checked fields; None for Slack's `ssl_check`.
    `shapes.BadRequest` says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise shapes.BadRequest("the body is not UTF-8") from None
    form = shapes.read_form(text)
    if form.get("ssl_check") == "1" and "command" not in form:
        return None
    return shapes.canonical(form)


def guard(front: SlackFront) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt middleware (HTTP and Socket Mode): a request of a shape no listener expects
    is refused (400, one line); a delivery seen before is acked and dropped."""

    async def middleware(
        body: dict[str, Any], next: Callable[[], Awaitable[BoltResponse | None]]
    ) -> BoltResponse | None:
        why = shapes.problem(body)
        if why is not None:
            log.warning("refused a malformed request (400): %s", why)
            return BoltResponse(status=400, body="")
        team = await front.own_team()
        if team is not None and shapes.origin(body).team != team:
            log.warning("refused a request from another workspace (%s)", shapes.origin(body).team)
            return BoltResponse(
                status=200, body="This bot answers only in its own workspace; nothing was done."
            )
        key = shapes.delivery_key(body)
        if key is not None:
            try:
                first = await front.call(
                    front.redis.set(delivery_key(key), "1", nx=True, ex=DELIVERY_TTL)
                )
            except Exception as exc:  # Redis away: handle it; transitions are atomic
                log.warning("cannot remember delivery %s: %s", key[:12], exc)
                first = True
            if not first:
                log.debug("dropped a redelivery %s", key[:12])
                return BoltResponse(status=200, body="")
        return await next()

    return middleware


def dependencies(front: SlackFront) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt middleware: what the listeners (handlers/) need, in Bolt's context: the Slack
    front as `context["front"]` and the engine as `context["engine"]`. The listeners are
    module-level functions; this is where they get their dependencies."""

    async def middleware(
        context: Any, next: Callable[[], Awaitable[BoltResponse | None]]
    ) -> BoltResponse | None:
        context["front"] = front
        context["engine"] = front.engine
        return await next()

    return middleware


def on_error(front: SlackFront) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt's error handler, for a listener that raised before its ack (after it, the
    listener's own boundary answers: handlers.common.after_ack). One log line with a
    reference (the traceback at debug level only), nothing of the error to Slack, and a
    safe answer: a slash command's reply, or a modal's error, says "Something went wrong
    (ref …)"; a click's person is told ephemerally. Nothing more was done."""

    async def handler(
        error: Exception, body: dict[str, Any], response: BoltResponse | None
    ) -> BoltResponse | None:
        well_formed = shapes.problem(body) is None
        who = shapes.origin(body) if well_formed else None
        answered = response is not None and well_formed and _answers_in_ack(body)
        ref = front.failed(error, None if answered else who)
        if response is None:  # acked already: nothing more to answer
            return None
        return safe_response(body if well_formed else {}, ref)

    return handler


def _answers_in_ack(body: dict[str, Any]) -> bool:
    """A slash command and a modal's submission show what their ack says."""
    return "command" in body or body.get("type") == "view_submission"


def safe_response(body: dict[str, Any], ref: str) -> BoltResponse:
    """What Slack is answered for a request whose listener failed before its ack: the
    reference and no detail. A slash command shows the text to its sender; a modal keeps
    it under its first input; a click's answer is empty (the person is told apart)."""
    text = SOMETHING_WRONG.format(ref=ref)
    reply: dict[str, Any] | None = None
    if "command" in body:
        reply = {"response_type": "ephemeral", "text": text}
    elif body.get("type") == "view_submission":
        first = str(next(iter(body["view"]["state"]["values"])))
        reply = {"response_action": "errors", "errors": {first: text}}
    # A JSON body is sent as application/json (BoltResponse sets it).
    return BoltResponse(status=200, body=json.dumps(reply) if reply else "")


def build(
    settings: Settings,
    redis_url: str,
    *,
    worker: str | None = None,
    remote: Connect = wiring.connect,
) -> Bot:
    """The Bolt app on the calling loop; the engine and its clients on a work loop.
    `remote` reaches the schedulers (SSH and /vars; tests hand in recording fakes)."""
    work = WorkLoop()

    async def make() -> tuple[AsyncWebClient, Any]:
        return web_client(settings), aioredis.Redis.from_url(redis_url)

    client, redis = work.submit(make()).result()
    # The listeners' own client (views.open within the trigger's 3 seconds) stays on the
    # app's loop, with its own sessions.
    listener_client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_url)
    metrics.instrument_slack(listener_client)
    # The signature is checked by `web_app` before Bolt sees a request (Bolt gets it
    # rebuilt from the checked fields); Socket Mode's requests come over Slack's socket.
    app = AsyncApp(
        client=listener_client,
        signing_secret=settings.signing_secret or "unused-in-socket-mode",
        request_verification_enabled=False,
    )
    approvers = Approvers(client)
    engine = wiring.build_engine(
        Store(redis),
        settings.clusters,
        settings=settings,
        connect=remote,
        may_approve=approvers.may_approve,
        worker=worker,
    )
    metrics.instrument_store(engine.store)
    updates = TokenBucket(settings.updates_per_minute, burst=settings.updates_burst)
    front = SlackFront(engine, client, redis, work, updates=updates)
    metrics.watch(engine)  # after the front: times steps, then the front displays
    app.middleware(guard(front))
    app.middleware(dependencies(front))
    app.error(on_error(front))
    commands.register(app)
    actions.register(app)
    return Bot(app, front, engine, redis, work, Reminders(front, approvers))


async def resume(bot: Bot) -> None:
    """After a restart: steps whose worker died become interrupted; threads are refreshed
    (a restore that cannot be picked up is logged by `Engine.resume`)."""
    for rid in await bot.engine.resume():
        bot.front.schedule_refresh(rid)


def start_sweeping(bot: Bot) -> Any:
    """Every process looks for steps whose worker died (their lease ran out), all the
    time, not only at start-up: the sweep runs on the work loop until the bot closes."""
    return bot.work.submit(bot.engine.sweep_forever())


def start_reminding(bot: Bot) -> Any:
    """Every process reminds the approvers of steps waiting too long (bot.reminders);
    a Redis SET NX per interval makes it one reminder across the processes."""
    return bot.work.submit(bot.reminders.run_forever())


def start_checking(bot: Bot) -> Any:
    """Every process runs the scheduled readiness checks (bot.readiness_schedule); a
    Redis SET NX per period makes it one check across the processes."""
    return bot.work.submit(ReadinessSchedule(bot.front).run_forever())


def web_app(bot: Bot, signing_secret: str) -> web.Application:
    verifier = RawBodyVerifier(signing_secret)

    async def events(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("refused a request body over %d bytes (413)", MAX_BODY)
            return web.Response(status=413)
        if not signed(verifier, request.headers, raw):
            log.info("refused an unsigned or forged request (401)")
            return web.Response(status=401)
        try:
            body = checked_body(raw)
        except shapes.BadRequest as exc:
            log.warning("refused a malformed request (400): %s", exc)
            return web.Response(status=400)
        if body is None:
            return web.Response(status=200)
        bolt_request = AsyncBoltRequest(
            body=json.dumps(body), headers={"content-type": "application/json"}
        )
        try:
            bolt_response = await bot.app.async_dispatch(bolt_request)
        except Exception as exc:  # a bug of ours: one line with a reference, no traceback
            bot.front.failed(exc, shapes.origin(body))
            return web.Response(status=500)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        try:
            await bot.work.run(bot.redis.ping())
        except Exception:
            return web.json_response({"ok": False, "redis": "unreachable"}, status=503)
        return web.json_response({"ok": True})

    async def metrics_text(_: web.Request) -> web.Response:
        try:
            body = await bot.work.run(metrics.scrape(bot.engine.store))
        except Exception as exc:  # the store away: say so, in one line
            log.warning("cannot read the store for /metrics: %s: %s", type(exc).__name__, exc)
            return web.Response(status=503, text="the store is unreachable\n")
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    application = web.Application(client_max_size=MAX_BODY)
    application.router.add_post("/slack/events", events)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics_text)
    return application


async def serve(
    settings: Settings, redis_url: str, *, host: str = "0.0.0.0", sock: socket.socket | None = None
) -> None:
    bot = build(settings, redis_url)
    await bot.work.run(resume(bot))
    # The workspace (auth.test) is asked once here, not on the first request's ack path.
    await bot.front.own_team()
    sweeper = start_sweeping(bot)
    reminder = start_reminding(bot)
    checker = start_checking(bot)
    runner = web.AppRunner(web_app(bot, settings.signing_secret or ""))
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
        sweeper.cancel()
        reminder.cancel()
        checker.cancel()
        await runner.cleanup()
        await bot.close()


async def socket_mode(settings: Settings, redis_url: str) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    bot = build(settings, redis_url)
    await bot.work.run(resume(bot))
    # The workspace (auth.test) is asked once here, not on the first request's ack path.
    await bot.front.own_team()
    sweeper = start_sweeping(bot)
    reminder = start_reminding(bot)
    checker = start_checking(bot)
    # Its own client without retry handlers: a failed apps.connections.open is one line
    # and a backoff (patient_connections), not slack_sdk's retries and tracebacks.
    opener = AsyncWebClient(base_url=settings.api_url, retry_handlers=[])
    handler = AsyncSocketModeHandler(bot.app, settings.app_token, web_client=opener)
    patient_connections(handler.client, settings.api_url)
    try:
        await handler.start_async()  # type: ignore[no-untyped-call]
    finally:
        sweeper.cancel()
        reminder.cancel()
        checker.cancel()
        await bot.close()


class _OneLine(logging.Filter):
    """slack_sdk logs a failed WebSocket connect with its traceback: keep the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Failed to connect"):
            record.exc_info = None
            record.exc_text = None
        return True


def patient_connections(client: Any, api_url: str, first: float = 1.0, most: float = 60.0) -> None:
    """Socket Mode without Slack (no network, a wrong SLACK_API_URL): each failed
    `apps.connections.open` is one log line and a wait that doubles up to `most`, and
    the connection is tried again until it works (slack_sdk would log a traceback every
    ten seconds)."""
    client.logger.addFilter(_OneLine())
    issue = client.issue_new_wss_url

    async def patient() -> str:
        delay = first
        while True:
            try:
                url: str = await issue()
                return url
            except Exception as exc:
                if client.closed:
                    raise
                why = exc.response.get("error") if hasattr(exc, "response") else exc
                log.warning(
                    "cannot open a Socket Mode connection at %sapps.connections.open: %s: %s; "
                    "trying again in %.0fs",
                    api_url,
                    type(exc).__name__,
                    why,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)

    client.issue_new_wss_url = patient

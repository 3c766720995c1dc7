"""What every listener shares: its dependencies from Bolt's context, the one error
boundary after the ack, refusals, and the procedure a restore runs.

A listener acks at once and hands one piece of work (`after_ack`) to the work loop.
That work makes one engine call; a `Refused` is told to the person (ephemeral) and noted
in the thread; any other failure is one log line with a reference (the traceback at
debug level only) and an ephemeral message in the restore's thread, "Something went
wrong (ref …); nothing more was done; the bot log has the details". Failures before
the ack are Bolt's: `bot.slack_app.on_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.slack_front import SOMETHING_WRONG, SlackFront
from handlers.shapes import Origin
from runbook.engine import Engine, Refused
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.step import Procedure, Role, Step, procedure_named
from runbook.store import RestoreRecord

log = logging.getLogger(__name__)

# The procedures a record may name (its meta or data "procedure"); the online one when
# it names none. Issue 15 adds the offline procedure here.


def front_of(context: Any) -> SlackFront:
    """The Slack front (and through it the engine) put in the context by the app's
    middleware (`bot.slack_app.dependencies`)."""
    front: SlackFront = context["front"]
    return front


def engine_of(context: Any) -> Engine:
    engine: Engine = context["engine"]
    return engine


def procedure_of(rec: RestoreRecord | None) -> Procedure:
    """The procedure a restore runs: the one its record names, else the online one."""
    if rec is None:
        return ONLINE
    return procedure_named(PROCEDURES, {"rid": rec.rid, **rec.meta})


def step_of(rec: RestoreRecord | None, role: Role) -> Step:
    """The restore's first step of `role` (every procedure has a preflight and a review)."""
    step = procedure_of(rec).first(role)
    if step is None:
        raise LookupError(f"procedure {procedure_of(rec).name} has no {role} step")
    return step


async def refuse(front: SlackFront, rid: str, who: Origin, sid: str, exc: Refused) -> None:
    """A refusal: the person is told why, the thread says who was refused; nothing changed."""
    await front.tell(who, f"🚫 {exc}")
    await front.line(rid, who.user, "refused", sid, str(exc))


async def placed(front: SlackFront, rid: str, who: Origin) -> bool:
    """The request comes from the restore's workspace and thread channel; if not, the
    person is told why, and nothing changes."""
    why = await front.place_refusal(rid, who)
    if why is not None:
        await front.tell(who, f"🚫 {why}")
        return False
    return True


async def engine_call(
    front: SlackFront, rid: str, who: Origin, sid: str, call: Callable[[], Awaitable[Any]]
) -> bool:
    """The one engine call of a listener, after its ack. True when it went through;
    False when it was refused (the person told, the thread noted)."""
    try:
        await call()
    except Refused as exc:
        await refuse(front, rid, who, sid, exc)
        return False
    return True


async def tell_in_thread(front: SlackFront, who: Origin, rid: str, text: str) -> None:
    """An ephemeral message to `who` in the restore's thread (in the channel they asked
    from when the restore has no thread there). Costs one log line if it cannot be sent."""
    where: tuple[str, str] | None = None
    try:
        where = await front.thread(rid) if rid else None
    except Exception as exc:  # the store away: the channel asked from will do
        log.warning("cannot find the thread of restore %s: %s", rid, type(exc).__name__)
    if where is not None and who.channel in ("", where[0]):
        channel, thread_ts = where
    else:
        channel, thread_ts = who.channel, ""
    if not channel or not who.user:
        return
    try:
        await front.client.chat_postEphemeral(
            channel=channel, user=who.user, text=text, thread_ts=thread_ts or None
        )
    except Exception as exc:
        log.warning("cannot tell %s in %s: %s", who.user, channel, type(exc).__name__)


def failed_after_ack(front: SlackFront, exc: BaseException, who: Origin, rid: str) -> str:
    """One log line with a reference; the person who asked is told in the restore's
    thread. Returns the reference."""
    ref = front.failed(exc, None)
    front.spawn(tell_in_thread(front, who, rid, SOMETHING_WRONG.format(ref=ref)))
    return ref


async def _guarded(
    front: SlackFront, who: Origin, rid: str, work: Coroutine[Any, Any, Any]
) -> None:
    try:
        await work
    except Exception as exc:
        ref = front.failed(exc, None)
        await tell_in_thread(front, who, rid, SOMETHING_WRONG.format(ref=ref))


def after_ack(front: SlackFront, who: Origin, rid: str, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` on the work loop for `who`, behind the error boundary: whatever it
    raises becomes one log line with a reference and a message in `rid`'s thread."""
    front.spawn(_guarded(front, who, rid, work), who)

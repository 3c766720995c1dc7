"""A local double of the Slack Web API, plus helpers to send real signed requests to a Bolt app.

The double is an aiohttp server on 127.0.0.1 (free port) that runs in the test's event loop::

    async with SlackDouble() as double:
        client = AsyncWebClient(token=double.token, base_url=double.base_url)
        ...

It answers the methods the bot uses the way Slack does (see docs/slack-notes.md), records
every call, validates every Block Kit payload (slack_sdk's models plus Slack's documented limits),
and can inject 429s / 5xx and enforce a rate limit.

Errors follow Slack: HTTP 200 with ``{"ok": false, "error": ...}``, except injected faults and rate
limits (429 with ``Retry-After``, or 5xx).

Deliberately stricter than Slack (to catch bot bugs early): a reply whose ``thread_ts`` is not a
message the double knows gets ``thread_not_found`` (files: ``invalid_thread_ts``); an uploaded file
whose size differs from the announced ``length`` gets ``file_upload_size_mismatch``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, ClientSession, web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

JSON_PARAMS = ("blocks", "attachments", "view", "files", "metadata", "user_auth_blocks")

# Slack's documented limits (docs/slack-notes.md, "Block Kit limits").
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_MODAL = 100
MAX_TEXT = 40_000
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_SELECT_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_PLACEHOLDER = 150
MAX_CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
MAX_VIEW_TEXT = 24  # modal title / submit / close
MAX_PRIVATE_METADATA = 3000
MAX_CALLBACK_ID = 255
BLOCK_SURFACES = ("chat.postMessage", "chat.update", "chat.postEphemeral")


# ---------------------------------------------------------------------------------------------
# Block Kit validation
# ---------------------------------------------------------------------------------------------


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        value = obj.get("text", "")
        return value if isinstance(value, str) else ""
    return obj if isinstance(obj, str) else ""


def _check_element(el: Any, where: str, errors: list[str]) -> None:
    if not isinstance(el, dict):
        errors.append(f"{where}: element must be an object")
        return
    action_id = el.get("action_id")
    if action_id is not None and len(str(action_id)) > MAX_ACTION_ID:
        errors.append(f"{where}: action_id longer than {MAX_ACTION_ID} characters")
    if el.get("type") == "button":
        text = el.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            errors.append(f"{where}: button text must be a plain_text object")
        if len(_text_of(text)) > MAX_BUTTON_TEXT:
            errors.append(f"{where}: button text longer than {MAX_BUTTON_TEXT} characters")
        if len(str(el.get("value", ""))) > MAX_BUTTON_VALUE:
            errors.append(f"{where}: button value longer than {MAX_BUTTON_VALUE} characters")
        if len(str(el.get("url", ""))) > MAX_BUTTON_URL:
            errors.append(f"{where}: button url longer than {MAX_BUTTON_URL} characters")
        if "style" in el and el["style"] not in ("primary", "danger"):
            errors.append(f"{where}: button style must be primary or danger")
    if el.get("type") == "static_select":
        options = el.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= MAX_SELECT_OPTIONS:
            errors.append(f"{where}: static_select needs 1 to {MAX_SELECT_OPTIONS} options")
            options = []
        for i, o in enumerate(options):
            text = o.get("text") if isinstance(o, dict) else None
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"{where}.options[{i}]: text must be a plain_text object")
            if len(_text_of(text)) > MAX_OPTION_TEXT:
                errors.append(f"{where}.options[{i}]: text longer than {MAX_OPTION_TEXT}")
            value = o.get("value") if isinstance(o, dict) else None
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_OPTION_VALUE:
                errors.append(f"{where}.options[{i}]: value must be 1 to {MAX_OPTION_VALUE} chars")
        initial = el.get("initial_option")
        if initial is not None and initial not in options:
            errors.append(f"{where}: initial_option must be one of the options")
        if len(_text_of(el.get("placeholder"))) > MAX_PLACEHOLDER:
            errors.append(f"{where}: placeholder longer than {MAX_PLACEHOLDER} characters")
    confirm = el.get("confirm")
    if confirm is not None:
        if not isinstance(confirm, dict):
            errors.append(f"{where}: confirm must be an object")
        else:
            for key, limit in MAX_CONFIRM.items():
                if len(_text_of(confirm.get(key))) > limit:
                    errors.append(f"{where}: confirm {key} longer than {limit} characters")
            if "style" in confirm and confirm["style"] not in ("primary", "danger"):
                errors.append(f"{where}: confirm style must be primary or danger")


def _check_block(block: dict[str, Any], where: str, errors: list[str]) -> None:
    btype = block.get("type")
    if btype == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"{where}: section needs text or fields")
        if len(_text_of(block.get("text"))) > MAX_SECTION_TEXT:
            errors.append(f"{where}: section text longer than {MAX_SECTION_TEXT} characters")
        fields = block.get("fields") or []
        if len(fields) > MAX_SECTION_FIELDS:
            errors.append(f"{where}: more than {MAX_SECTION_FIELDS} fields")
        for i, f in enumerate(fields):
            if len(_text_of(f)) > MAX_FIELD_TEXT:
                errors.append(f"{where}.fields[{i}]: longer than {MAX_FIELD_TEXT} characters")
        if "accessory" in block:
            _check_element(block["accessory"], f"{where}.accessory", errors)
    elif btype == "header":
        text = block.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            errors.append(f"{where}: header text must be a plain_text object")
        if len(_text_of(text)) > MAX_HEADER_TEXT:
            errors.append(f"{where}: header text longer than {MAX_HEADER_TEXT} characters")
    elif btype == "context":
        elements = block.get("elements") or []
        if not elements:
            errors.append(f"{where}: context needs at least one element")
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            errors.append(f"{where}: more than {MAX_CONTEXT_ELEMENTS} context elements")
    elif btype == "actions":
        elements = block.get("elements") or []
        if not elements:
            errors.append(f"{where}: actions needs at least one element")
        if len(elements) > MAX_ACTIONS_ELEMENTS:
            errors.append(f"{where}: more than {MAX_ACTIONS_ELEMENTS} actions elements")
        seen: set[str] = set()
        for i, el in enumerate(elements):
            _check_element(el, f"{where}.elements[{i}]", errors)
            aid = el.get("action_id") if isinstance(el, dict) else None
            if aid is not None:
                if aid in seen:
                    errors.append(f"{where}.elements[{i}]: duplicate action_id {aid!r} in block")
                seen.add(aid)
    elif btype == "input":
        if "element" in block:
            _check_element(block["element"], f"{where}.element", errors)
        if len(_text_of(block.get("label"))) > 2000:
            errors.append(f"{where}: input label longer than 2000 characters")


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_BLOCKS_MESSAGE) -> list[str]:
    """Every problem Slack would report for this ``blocks`` value (empty list: valid)."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks: not valid JSON"]
    if not isinstance(blocks, list):
        return ["blocks: must be an array"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"blocks: {len(blocks)} blocks, at most {max_blocks} allowed")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"{where}: block must be an object with a type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > MAX_BLOCK_ID:
                errors.append(f"{where}: block_id longer than {MAX_BLOCK_ID} characters")
            if block_id in block_ids:
                errors.append(f"{where}: duplicate block_id {block_id!r}")
            block_ids.add(block_id)
        _check_block(block, where, errors)
        # slack_sdk's own models: parse, validate, and serialise (to_dict validates the children).
        try:
            model = Block.parse(block)
            if model is None:
                errors.append(f"{where}: unknown block type {block.get('type')!r}")
            else:
                model.validate_json()
                model.to_dict()
        except Exception as exc:  # SlackObjectFormationError, TypeError, ...
            errors.append(f"{where}: {type(exc).__name__}: {exc}")
    return list(dict.fromkeys(errors))


def validate_view(view: Any) -> list[str]:
    """Problems Slack would report for a ``view`` (modal or home tab)."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            return ["view: not valid JSON"]
    if not isinstance(view, dict):
        return ["view: must be an object"]
    errors: list[str] = []
    vtype = view.get("type")
    if vtype not in ("modal", "home"):
        errors.append("view: type must be modal or home")
    if vtype == "modal" and not _text_of(view.get("title")):
        errors.append("view: modal needs a title")
    for key in ("title", "submit", "close"):
        if key in view:
            text = view[key]
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"view.{key}: must be a plain_text object")
            if len(_text_of(text)) > MAX_VIEW_TEXT:
                errors.append(f"view.{key}: longer than {MAX_VIEW_TEXT} characters")
    if len(str(view.get("private_metadata") or "")) > MAX_PRIVATE_METADATA:
        errors.append(f"view.private_metadata: longer than {MAX_PRIVATE_METADATA} characters")
    if len(str(view.get("callback_id") or "")) > MAX_CALLBACK_ID:
        errors.append(f"view.callback_id: longer than {MAX_CALLBACK_ID} characters")
    blocks = view.get("blocks")
    if blocks is None:
        errors.append("view: blocks is required")
    else:
        errors += validate_blocks(blocks, max_blocks=MAX_BLOCKS_MODAL)
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if vtype == "modal" and has_input and "submit" not in view:
            errors.append("view: a modal with input blocks needs a submit button")
    try:
        View(**view).validate_json()
    except Exception as exc:
        errors.append(f"view: {type(exc).__name__}: {exc}")
    return list(dict.fromkeys(errors))


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class SlackError(Exception):
    """Raised by a method handler to answer ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class _Fault:
    status: int
    retry_after: int
    remaining: int
    error: str | None


@dataclass
class StoredFile:
    id: str
    name: str
    length: int | None
    title: str | None = None
    content: bytes | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    shares: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8", errors="replace")


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


class SlackDouble:
    """A local Slack Web API. ``await start()`` returns the ``base_url`` for ``AsyncWebClient``."""

    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        team_id: str = "T0AURORA",
        team_domain: str = "aurora-test",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
    ) -> None:
        self.token = token
        self.valid_tokens: set[str] = {token}
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        # configurable directory data
        self.usergroups: dict[str, list[str]] = {}
        self.usergroup_handles: dict[str, str] = {}  # handle -> usergroup id
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: set[str] | None = None  # None: any channel id exists
        self.single_use_triggers = True
        # recorded state
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses: list[tuple[str, int, dict[str, Any]]] = []  # (method, status, body)
        self.invalid: list[tuple[str, list[str], dict[str, Any]]] = []  # (method, errors, params)
        self.throttled: list[tuple[str, dict[str, Any]]] = []  # calls answered with 429
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, StoredFile] = {}  # every file id handed out
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._limits: dict[str, tuple[int, bool]] = {}  # method -> (per_second, per_channel)
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._used_triggers: set[str] = set()
        self._ts = itertools.count(1_700_000_000_000_100, 100)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.root_url = ""
        self.base_url = ""
        self.handlers: dict[str, Handler] = {
            "api.test": lambda p: {"args": p},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "usergroups.list": self._usergroups_list,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.root_url = f"http://{host}:{port}/"
        self.base_url = f"{self.root_url}api/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration ----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` answer ``status`` (429 with Retry-After, or 5xx)."""
        self._faults.setdefault(method, deque()).append(_Fault(status, retry_after, times, error))

    def rate_limit(self, method: str, per_second: int, *, per_channel: bool = False) -> None:
        """Answer 429 (Retry-After: 1) once ``per_second`` calls were accepted in the last second."""
        self._limits[method] = (per_second, per_channel)

    def add_user(self, user_id: str, name: str, real_name: str | None = None, **extra: Any) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name or name,
            "deleted": False,
            "is_bot": False,
            "tz": "UTC",
            "profile": {"real_name": real_name or name, "display_name": name},
            **extra,
        }

    # -- inspection -------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for m, params in self.calls if m == method]

    def messages(
        self, channel: str | None = None, thread_ts: str | None = None
    ) -> list[dict[str, Any]]:
        """Current messages (after updates), oldest first. ``thread_ts`` selects the parent and
        its replies."""
        out = [
            m
            for m in self._messages.values()
            if (channel is None or m["channel"] == channel)
            and (thread_ts is None or m["ts"] == thread_ts or m.get("thread_ts") == thread_ts)
        ]
        return sorted(out, key=lambda m: m["ts"])

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        return self._messages[(channel, ts)]

    @property
    def files(self) -> list[StoredFile]:
        """Files completed (shared) through files.completeUploadExternal."""
        return [f for f in self.uploads.values() if f.shares]

    # -- helpers ----------------------------------------------------------------------------

    def next_ts(self) -> str:
        value = next(self._ts)
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _check_channel(self, channel: Any) -> str:
        if not channel or (self.channels is not None and channel not in self.channels):
            raise SlackError("channel_not_found")
        return str(channel)

    def _check_blocks(self, method: str, params: dict[str, Any], errors: list[str]) -> None:
        if errors:
            self.invalid.append((method, errors, params))
            raise SlackError(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )

    def _check_message_payload(self, method: str, params: dict[str, Any]) -> None:
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_TEXT:
            errors = [f"text: {len(str(text))} characters, more than {MAX_TEXT}"]
            self.invalid.append((method, errors, params))
            raise SlackError("msg_too_long", errors=errors)
        if "blocks" in params:
            self._check_blocks(method, params, validate_blocks(params["blocks"]))

    def _limited(self, method: str, params: dict[str, Any]) -> bool:
        if method not in self._limits:
            return False
        per_second, per_channel = self._limits[method]
        key = (method, str(params.get("channel", "")) if per_channel else "")
        window = self._windows.setdefault(key, deque())
        now = time.monotonic()
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= per_second:
            return True
        window.append(now)
        return False

    # -- HTTP ---------------------------------------------------------------------------------

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in JSON_PARAMS:
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass
        return params

    def _respond(
        self, method: str, body: dict[str, Any], status: int = 200, **kw: Any
    ) -> web.Response:
        self.responses.append((method, status, body))
        return web.json_response(body, status=status, **kw)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._read_params(request)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        self.calls.append((method, params))

        faults = self._faults.get(method)
        if faults:
            fault = faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.popleft()
            if fault.status == 429:
                self.throttled.append((method, params))
                return self._respond(
                    method,
                    {"ok": False, "error": fault.error or "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(fault.retry_after)},
                )
            error = fault.error or ("service_unavailable" if fault.status == 503 else "fatal_error")
            return self._respond(method, {"ok": False, "error": error}, status=fault.status)
        if self._limited(method, params):
            self.throttled.append((method, params))
            return self._respond(
                method,
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": "1"},
            )

        if not token:
            return self._respond(method, {"ok": False, "error": "not_authed"})
        if token not in self.valid_tokens:
            return self._respond(method, {"ok": False, "error": "invalid_auth"})
        handler = self.handlers.get(method)
        if handler is None:
            return self._respond(method, {"ok": False, "error": "unknown_method"}, status=404)
        try:
            result = handler(params)
            if not isinstance(result, dict):
                result = await result
        except SlackError as exc:
            return self._respond(method, {"ok": False, "error": exc.error, **exc.extra})
        return self._respond(method, {"ok": True, **result})

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        stored = self.uploads.get(file_id)
        if request.content_type == "multipart/form-data":
            content = b""
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.filename is not None or part.name in ("file", "filename"):
                    content = bytes(await part.read())
        else:
            content = await request.read()
        self.calls.append(("upload", {"file_id": file_id, "size": len(content)}))
        if stored is None:
            return web.Response(status=404, text="file_not_found", content_type="text/plain")
        stored.content = content
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")

    # -- methods -------------------------------------------------------------------------------

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "aurora-restore",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
            raise SlackError("no_text")
        self._check_message_payload("chat.postMessage", p)
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None and (channel, thread_ts) not in self._messages:
            raise SlackError("thread_not_found")
        ts = self.next_ts()
        message = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": p.get("text", ""),
            "blocks": p.get("blocks") or [],
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
            parent = self._messages[(channel, thread_ts)]
            parent.setdefault("thread_ts", thread_ts)
            parent["reply_count"] = parent.get("reply_count", 0) + 1
        if p.get("metadata"):
            message["metadata"] = p["metadata"]
        self._messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": _public(message)}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        ts = p.get("ts")
        if not ts or (channel, ts) not in self._messages:
            raise SlackError("message_not_found")
        if "text" not in p and "blocks" not in p and "attachments" not in p:
            raise SlackError("no_text")
        self._check_message_payload("chat.update", p)
        message = self._messages[(channel, ts)]
        if "text" in p:
            message["text"] = p["text"]
        # Sending text without blocks removes the existing blocks (docs/slack-notes.md, "Updating a message").
        message["blocks"] = p.get("blocks") or []
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        return {
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": _public(message),
        }

    def _chat_post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        if not p.get("user"):
            raise SlackError("user_not_in_channel")
        if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
            raise SlackError("no_text")
        self._check_message_payload("chat.postEphemeral", p)
        ts = self.next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": p["user"],
                "ts": ts,
                "text": p.get("text", ""),
                "blocks": p.get("blocks") or [],
                "thread_ts": p.get("thread_ts"),
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        ts = p.get("message_ts")
        if not ts or (channel, ts) not in self._messages:
            raise SlackError("message_not_found")
        message = self._messages[(channel, ts)]
        url = f"https://{self.team_domain}.slack.com/archives/{channel}/p{str(ts).replace('.', '')}"
        parent = message.get("thread_ts")
        if parent and parent != ts:
            url += f"?thread_ts={parent}&cid={channel}"
        return {"channel": channel, "permalink": url}

    def _store_view(self, view: dict[str, Any], view_id: str) -> dict[str, Any]:
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": "A0AURORA",
            "bot_id": self.bot_id,
            "hash": f"{int(time.time())}.{next(self._ids):08d}",
            "state": {"values": {}},
            "private_metadata": "",
            "callback_id": "",
            "root_view_id": view_id,
            "previous_view_id": None,
            "external_id": "",
            **view,
        }
        self.views[view_id] = stored
        return stored

    def _validate_view(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        view = p.get("view")
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments", errors=["view is required"])
        self._check_blocks(method, p, validate_view(view))
        return view

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        trigger_id = p.get("trigger_id")
        if not trigger_id:
            raise SlackError("invalid_arguments", errors=["trigger_id is required"])
        view = self._validate_view("views.open", p)
        if self.single_use_triggers:
            if trigger_id in self._used_triggers:
                raise SlackError("trigger_exchanged")
            self._used_triggers.add(trigger_id)
        return {"view": self._store_view(view, self._new_id("V"))}

    def _views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view_id = p.get("view_id")
        if not view_id and p.get("external_id"):
            view_id = next(
                (k for k, v in self.views.items() if v.get("external_id") == p["external_id"]),
                None,
            )
        if not view_id or view_id not in self.views:
            raise SlackError("not_found")
        if p.get("hash") and p["hash"] != self.views[view_id]["hash"]:
            raise SlackError("hash_conflict")
        view = self._validate_view("views.update", p)
        return {"view": self._store_view(view, view_id)}

    def _group_ids(self) -> list[str]:
        ids = list(self.usergroups)
        ids += [g for g in self.usergroup_handles.values() if g not in ids]
        return ids

    def _usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        group = p.get("usergroup")
        if not group:
            raise SlackError("invalid_arguments", errors=["usergroup is required"])
        if group not in self._group_ids():
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups.get(group, []))}

    def _usergroups_list(self, p: dict[str, Any]) -> dict[str, Any]:
        handles = {g: h for h, g in self.usergroup_handles.items()}
        include_users = str(p.get("include_users", "")).lower() in ("1", "true")
        groups = []
        for gid in self._group_ids():
            users = self.usergroups.get(gid, [])
            handle = handles.get(gid, gid.lower())
            group: dict[str, Any] = {
                "id": gid,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": handle,
                "handle": handle,
                "date_delete": 0,
                "user_count": len(users),
            }
            if include_users:
                group["users"] = list(users)
            groups.append(group)
        return {"usergroups": groups}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(p.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _files_get_upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        filename = p.get("filename")
        length = p.get("length")
        if not filename or length is None or not str(length).isdigit():
            raise SlackError("invalid_arguments", errors=["filename and length are required"])
        file_id = self._new_id("F")
        self.uploads[file_id] = StoredFile(id=file_id, name=str(filename), length=int(length))
        return {"upload_url": f"{self.root_url}upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments", errors=["files is required"])
        channels = [c for c in str(p.get("channels") or "").split(",") if c]
        if p.get("channel_id"):
            channels.insert(0, str(p["channel_id"]))
        for c in channels:
            self._check_channel(c)
        thread_ts = p.get("thread_ts") or None
        if thread_ts and len(channels) != 1:
            raise SlackError("invalid_arguments", errors=["thread_ts needs exactly one channel"])
        if thread_ts and (channels[0], thread_ts) not in self._messages:
            raise SlackError("invalid_thread_ts")
        stored_files = []
        for item in files:
            stored = self.uploads.get(str(item.get("id"))) if isinstance(item, dict) else None
            if stored is None or stored.content is None:
                raise SlackError("file_not_found")
            if stored.length is not None and len(stored.content) != stored.length:
                raise SlackError("file_upload_size_mismatch")
            stored_files.append((stored, item))
        out = []
        for stored, item in stored_files:
            stored.title = item.get("title") or stored.name
            if channels:
                stored.channel = channels[0]
                stored.thread_ts = thread_ts
                stored.initial_comment = p.get("initial_comment")
                for c in channels:
                    share = {"channel": c, "ts": self.next_ts(), "thread_ts": thread_ts}
                    stored.shares.append(share)
            out.append(
                {
                    "id": stored.id,
                    "name": stored.name,
                    "title": stored.title,
                    "size": len(stored.content or b""),
                    "channels": channels,
                    "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/"
                    f"{stored.id}/{urllib.parse.quote(stored.name)}",
                }
            )
        return {"files": out}


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "channel"}


# ---------------------------------------------------------------------------------------------
# Signed requests to a Bolt app, and payloads as Slack sends them (docs/slack-notes.md: signing, payload fields)
# ---------------------------------------------------------------------------------------------

_trigger_counter = itertools.count(1)


def _trigger_id() -> str:
    return f"{int(time.time())}.{next(_trigger_counter)}.abcdef0123456789"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers: ``v0=`` + HMAC-SHA256(secret, ``v0:{ts}:{body}``)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


async def post_signed(
    url: str, secret: str, body: bytes, timestamp: int | None = None
) -> tuple[int, str]:
    """POST a form body to a Bolt app exactly as Slack does; returns (status, response text)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body, timestamp)}
    async with ClientSession() as session, session.post(url, data=body, headers=headers) as res:
        return res.status, await res.text()


def slash_command_body(
    command: str = "/aurora-restore",
    text: str = "",
    *,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0OPS",
    channel_name: str = "ops",
    team_id: str = "T0AURORA",
    team_domain: str = "aurora-test",
    trigger_id: str | None = None,
    response_url: str | None = None,
    api_app_id: str = "A0AURORA",
    enterprise_id: str | None = None,
) -> bytes:
    """A slash command body, form-encoded as Slack sends it."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/{next(_trigger_counter)}/xyz",
        "trigger_id": trigger_id or _trigger_id(),
    }
    if enterprise_id:
        fields["enterprise_id"] = enterprise_id
    return urllib.parse.urlencode(fields).encode()


def _payload_body(payload: dict[str, Any]) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def block_actions_body(
    *,
    user_id: str = "U0ALICE",
    action_id: str,
    value: str | None = None,
    channel_id: str = "C0OPS",
    message_ts: str = "1700000000.000100",
    trigger_id: str | None = None,
    thread_ts: str | None = None,
    block_id: str = "actions",
    message: dict[str, Any] | None = None,
    user_name: str = "alice",
    team_id: str = "T0AURORA",
    response_url: str | None = None,
    action_type: str = "button",
    is_ephemeral: bool = False,
    state_values: dict[str, Any] | None = None,
    selected_option: dict[str, Any] | None = None,
) -> bytes:
    """A block_actions payload for a click in a message (``payload=<json>``, form-encoded).

    ``message`` is the clicked message (e.g. ``double.message(channel, ts)``); by default a minimal
    message with ``ts``/``thread_ts``. ``thread_ts`` marks a message inside a thread."""
    msg = {k: v for k, v in (message or {}).items() if k != "channel"}
    msg.setdefault("type", "message")
    msg.setdefault("ts", message_ts)
    msg.setdefault("text", "")
    msg.setdefault("blocks", [])
    if thread_ts:
        msg.setdefault("thread_ts", thread_ts)
    thread_ts = msg.get("thread_ts", thread_ts)
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if thread_ts:
        container["thread_ts"] = thread_ts
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": f"{time.time():.6f}",
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": "Button", "emoji": True}
    if value is not None:
        action["value"] = value
    if selected_option is not None:  # a select menu: what was picked, and what was there
        action["selected_option"] = selected_option
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": "A0AURORA",
        "token": "deprecated-verification-token",
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": "aurora-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "ops"},
        "message": msg,
        "state": {"values": state_values or {}},
        "response_url": response_url
        or f"https://hooks.slack.com/actions/{team_id}/{next(_trigger_counter)}/xyz",
        "actions": [action],
    }
    return _payload_body(payload)


def view_submission_body(
    *,
    user_id: str = "U0ALICE",
    callback_id: str,
    private_metadata: str = "",
    state_values: dict[str, Any] | None = None,
    view_id: str = "V00000001",
    user_name: str = "alice",
    team_id: str = "T0AURORA",
    blocks: list[dict[str, Any]] | None = None,
    trigger_id: str | None = None,
) -> bytes:
    """A view_submission payload (``payload=<json>``, form-encoded).

    ``state_values`` is ``{block_id: {action_id: {"type": ..., "value": ...}}}`` as Slack sends."""
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "aurora-test"},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": "A0AURORA",
        "token": "deprecated-verification-token",
        "trigger_id": trigger_id or _trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values or {}},
            "hash": "1700000000.abcdef",
            "title": {"type": "plain_text", "text": "Aurora restore"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": "A0AURORA",
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0BOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _payload_body(payload)

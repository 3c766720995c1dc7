"""What a Slack request must look like before any listener sees it, where it came from,
and what identifies one delivery of it.

`read_form` turns a verified body into the request's dict (slash command fields, or the
`payload` JSON of an interaction), `problem` says in one line what is wrong with a
request dict (None: nothing), `canonical` keeps only the fields the listeners and Bolt
read, and `delivery_key` names one delivery so that a redelivery is recognised by what
it carries (docs/slack-notes.md, "Retries and redeliveries": Slack redelivers the same payload, with `X-Slack-Retry-Num`
on the Events API only, and a replayed body is byte for byte the first one).

Nothing here raises on a request's content except `BadRequest`, whose message is the
one line logged and answered (400).
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

COMMAND = "/aurora-restore"
# Buttons whose value is {"rid": ..., "sid": ...}, and those whose value is {"rid": ...}.
STEP_BUTTONS = ("approve", "retry", "mark_done", "rewind", "skip")
RESTORE_BUTTONS = ("export", "delete_tasks", "abort", "put_back")
ACTIONS = (*STEP_BUTTONS, *RESTORE_BUTTONS, "choose_backup")
VIEWS = ("delete_tasks", "skip_reason", "abort_restore")

ID_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$", re.ASCII)  # team, user, channel, view ids
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
RID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$", re.ASCII)
TS_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$", re.ASCII)
MAX_FIELDS = 64
MAX_STRING = 64 * 1024


class BadRequest(ValueError):
    """The request is signed but not something Slack sends us; the message says what."""


@dataclass(frozen=True)
class Origin:
    """Where a request comes from: the workspace, the person and the channel."""

    team: str
    enterprise: str
    user: str
    channel: str
    channel_name: str = ""


def read_form(text: str) -> dict[str, Any]:
    """A form body (Slack sends every command and interaction so) as the request's dict."""
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS
        )
    except ValueError as exc:
        raise BadRequest(f"not a form body: {str(exc)[:80]}") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise BadRequest(f"form field {key[:40]!r} given twice")
        fields[key] = value
    if "payload" not in fields:
        return fields
    try:
        payload = json.loads(fields["payload"])
    except (ValueError, RecursionError):
        raise BadRequest("payload: not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("payload: not a JSON object")
    return payload


def _str(value: Any, where: str, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise BadRequest(f"{where}: missing or not a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadRequest(f"{where}: not a Slack id: {value[:40]!r}")
    return value


def _opt_str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise BadRequest(f"{where}: not a string")
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: missing or not an object")
    return value


def _enterprise(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _str(value, "enterprise", pattern=ID_RE)
    return _str(_obj(value, "enterprise").get("id"), "enterprise.id", pattern=ID_RE)


def _json_value(text: str, where: str, *keys: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest(f"{where}: not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{where}: not a JSON object")
    out = {"rid": _str(data.get("rid"), f"{where}.rid", pattern=RID_RE)}
    for key in keys:
        out[key] = _str(data.get(key), f"{where}.{key}")[:200]
    if "plan" in data:  # the digest of the plan on the card clicked (runbook.plan)
        out["plan"] = _str(data.get("plan"), f"{where}.plan", pattern=DIGEST_RE)
    return out


def _slash(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("command") != COMMAND:
        raise BadRequest(f"command: not {COMMAND}: {str(body.get('command'))[:40]!r}")
    out = {
        "command": COMMAND,
        "text": _opt_str(body.get("text"), "text")[:4000],
        "user_id": _str(body.get("user_id"), "user_id", pattern=ID_RE),
        "channel_id": _str(body.get("channel_id"), "channel_id", pattern=ID_RE),
        "team_id": _str(body.get("team_id"), "team_id", pattern=ID_RE),
        "trigger_id": _str(body.get("trigger_id"), "trigger_id")[:200],
    }
    for key in ("channel_name", "user_name", "team_domain", "api_app_id", "response_url"):
        out[key] = _opt_str(body.get(key), key)[:500]
    if body.get("enterprise_id"):
        out["enterprise_id"] = _str(body.get("enterprise_id"), "enterprise_id", pattern=ID_RE)
    return out


def _who(body: dict[str, Any]) -> dict[str, Any]:
    team = _str(_obj(body.get("team"), "team").get("id"), "team.id", pattern=ID_RE)
    user = _obj(body.get("user"), "user")
    return {
        "team": {"id": team},
        "enterprise": {"id": e} if (e := _enterprise(body.get("enterprise"))) else None,
        "user": {
            "id": _str(user.get("id"), "user.id", pattern=ID_RE),
            "team_id": _opt_str(user.get("team_id"), "user.team_id")[:64],
        },
        "api_app_id": _opt_str(body.get("api_app_id"), "api_app_id")[:64],
        "is_enterprise_install": False,
    }


def _action(raw: Any) -> dict[str, Any]:
    action = _obj(raw, "actions[0]")
    aid = _str(action.get("action_id"), "actions[0].action_id")
    if aid not in ACTIONS:
        raise BadRequest(f"actions[0].action_id: not one of ours: {aid[:40]!r}")
    out: dict[str, Any] = {
        "action_id": aid,
        "block_id": _opt_str(action.get("block_id"), "actions[0].block_id")[:255],
        "type": _str(action.get("type"), "actions[0].type")[:40],
        "action_ts": _str(action.get("action_ts"), "actions[0].action_ts", pattern=TS_RE),
    }
    if aid == "choose_backup":
        if not out["block_id"].startswith("backup."):
            raise BadRequest("actions[0].block_id: not a backup menu")
        if not RID_RE.fullmatch(out["block_id"].removeprefix("backup.")):
            raise BadRequest("actions[0].block_id: names no restore")
        option = _obj(action.get("selected_option"), "actions[0].selected_option")
        value = _str(option.get("value"), "actions[0].selected_option.value")[:200]
        out["selected_option"] = {"value": value}
        return out
    value = _str(action.get("value"), "actions[0].value")
    _json_value(value, "actions[0].value", *(("sid",) if aid in STEP_BUTTONS else ()))
    out["value"] = value
    return out


def _block_actions(body: dict[str, Any]) -> dict[str, Any]:
    out = _who(body)
    container = _obj(body.get("container"), "container")
    channel = _str(container.get("channel_id"), "container.channel_id", pattern=ID_RE)
    actions = body.get("actions")
    if not isinstance(actions, list) or len(actions) != 1:
        raise BadRequest("actions: not a list of one action")
    out.update(
        type="block_actions",
        trigger_id=_str(body.get("trigger_id"), "trigger_id")[:200],
        channel={"id": channel},
        container={
            "type": "message",
            "channel_id": channel,
            "message_ts": _opt_str(container.get("message_ts"), "container.message_ts")[:40],
            "thread_ts": _opt_str(container.get("thread_ts"), "container.thread_ts")[:40],
        },
        actions=[_action(actions[0])],
    )
    return out


def _state_values(raw: Any) -> dict[str, Any]:
    values = _obj(_obj(raw, "view.state").get("values"), "view.state.values")
    if not values or len(values) > MAX_FIELDS:
        raise BadRequest("view.state.values: no inputs")
    out: dict[str, Any] = {}
    for block_id, elements in values.items():
        if not isinstance(elements, dict) or len(elements) > MAX_FIELDS:
            raise BadRequest("view.state.values: not objects")
        kept: dict[str, Any] = {}
        for action_id, element in elements.items():
            element = _obj(element, f"view.state.values.{block_id[:40]}")
            item: dict[str, Any] = {"type": _opt_str(element.get("type"), "element.type")[:40]}
            if "value" in element:
                item["value"] = _opt_str(element.get("value"), "element.value")
            if element.get("selected_option") is not None:
                option = _obj(element.get("selected_option"), "element.selected_option")
                item["selected_option"] = {"value": _opt_str(option.get("value"), "option.value")}
            kept[action_id] = item
        if not kept:
            raise BadRequest("view.state.values: an empty block")
        out[block_id] = kept
    return out


def _view_submission(body: dict[str, Any]) -> dict[str, Any]:
    out = _who(body)
    view = _obj(body.get("view"), "view")
    callback = _str(view.get("callback_id"), "view.callback_id")
    if callback not in VIEWS:
        raise BadRequest(f"view.callback_id: not one of ours: {callback[:40]!r}")
    metadata = _str(view.get("private_metadata"), "view.private_metadata")
    _json_value(metadata, "view.private_metadata", *(("sid",) if callback == "skip_reason" else ()))
    out.update(
        type="view_submission",
        trigger_id=_opt_str(body.get("trigger_id"), "trigger_id")[:200],
        view={
            "id": _str(view.get("id"), "view.id", pattern=ID_RE),
            "hash": _str(view.get("hash"), "view.hash")[:100],
            "type": "modal",
            "callback_id": callback,
            "private_metadata": metadata,
            "state": {"values": _state_values(view.get("state"))},
        },
    )
    return out


def canonical(body: Any) -> dict[str, Any]:
    """The request with only the fields we read, each checked; `BadRequest` otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("not an object")
    if "command" in body:
        return _slash(body)
    kind = body.get("type")
    if kind == "block_actions":
        return _block_actions(body)
    if kind == "view_submission":
        return _view_submission(body)
    raise BadRequest(f"not a request we take: type {str(kind)[:40]!r}")


def problem(body: Any) -> str | None:
    """One line saying what is wrong with a request dict, or None."""
    try:
        canonical(body)
    except BadRequest as exc:
        return str(exc)
    return None


def origin(body: dict[str, Any]) -> Origin:
    """Where a (canonical) request comes from. View submissions carry no channel."""
    if "command" in body:
        return Origin(
            body["team_id"],
            body.get("enterprise_id") or "",
            body["user_id"],
            body["channel_id"],
            body.get("channel_name") or "",
        )
    channel = (body.get("container") or {}).get("channel_id") or ""
    return Origin(
        body["team"]["id"],
        (body.get("enterprise") or {}).get("id") or "",
        body["user"]["id"],
        channel,
    )


def delivery_key(body: dict[str, Any]) -> str | None:
    """What names one delivery (a redelivery carries the same): for a click the team,
    user, action and its `action_ts`; for a modal submission its view id and hash (and
    what was submitted: a submission refused in the modal is corrected and sent again
    with the same hash); for a slash command its `trigger_id`."""
    if "command" in body:
        parts = ["command", body["team_id"], body["trigger_id"]]
    elif body.get("type") == "block_actions":
        action = body["actions"][0]
        parts = ["action", body["team"]["id"], body["user"]["id"]]
        parts += [action["action_id"], action["action_ts"]]
    elif body.get("type") == "view_submission":
        view = body["view"]
        submitted = json.dumps([view["private_metadata"], view["state"]], sort_keys=True)
        parts = ["view", body["team"]["id"], view["id"], view["hash"], submitted]
    else:
        return None
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

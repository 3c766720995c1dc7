"""Settings of the Slack app, from the environment.

A missing or malformed setting stops the start with one message naming it; no value of
a secret is ever printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runbook import redact
from runbook.clusters import Cluster, ClusterFileError, load_clusters, parse_duration

DEFAULT_API_URL = "https://slack.com/api/"


class SettingsError(ValueError):
    """One line naming the setting that is missing or wrong."""


@dataclass(frozen=True)
class Settings:
    bot_token: str
    signing_secret: str
    app_token: str | None
    api_url: str
    clusters: dict[str, Cluster]
    port: int
    data_dir: Path

    def __repr__(self) -> str:  # never show the secrets
        return (
            f"Settings(api_url={self.api_url!r}, clusters={list(self.clusters)}, port={self.port})"
        )


def _require(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set: {hint}")
    return value


def _register_secrets(values: list[str | None], redis_url: str | None) -> None:
    """The bot's own secrets are masked wherever they appear (outputs, messages, logs),
    and so is the password inside REDIS_URL, as written and percent-decoded."""
    try:
        password = urlsplit(redis_url).password if redis_url else None
    except ValueError:  # a malformed URL: redis-py reports it when connecting
        password = None
    if password:
        values += [password, unquote(password)]
    for value in values:
        redact.register_secret(value or "")


def load(env: Mapping[str, str] | None = None, *, socket_mode: bool = False) -> Settings:
    env = os.environ if env is None else env
    token = _require(env, "SLACK_BOT_TOKEN", "the bot token (xoxb-...) from the app's OAuth page")
    if not token.startswith("xoxb-"):
        raise SettingsError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    secret = env.get("SLACK_SIGNING_SECRET", "").strip()
    if not socket_mode:
        secret = _require(
            env, "SLACK_SIGNING_SECRET", "the signing secret from the app's Basic Information page"
        )
    app_token = env.get("SLACK_APP_TOKEN", "").strip() or None
    if socket_mode:
        app_token = _require(
            env,
            "SLACK_APP_TOKEN",
            "an app-level token (xapp-...) with connections:write, for Socket Mode",
        )
        if not app_token.startswith("xapp-"):
            raise SettingsError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
    if not api_url.startswith(("https://", "http://")):
        raise SettingsError(f"SLACK_API_URL must be an http(s) URL, not {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    path = Path(
        _require(env, "AURORA_RESTORE_CLUSTERS", "the path of the cluster file (see README)")
    )
    try:
        clusters = load_clusters(path)
    except ClusterFileError as exc:
        raise SettingsError(f"AURORA_RESTORE_CLUSTERS: {exc}") from None
    raw_port = env.get("PORT", "").strip() or "3000"
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise SettingsError(f"PORT must be a port number, not {raw_port!r}")
    retention = env.get("AURORA_RESTORE_RETENTION", "").strip()
    if retention:
        try:
            parse_duration(retention)
        except ValueError:
            raise SettingsError(
                f"AURORA_RESTORE_RETENTION must be a duration like 90d, not {retention!r}"
            ) from None
    # REDIS_URL is read where the store is opened (bot.redis_server.redis_url_from_env);
    # here only its password is registered as a secret.
    redis_url = env.get("REDIS_URL", "").strip() or None
    try:
        redact.configure(env.get("AURORA_RESTORE_REDACT", ""))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    _register_secrets([token, secret, app_token], redis_url)
    data = env.get("AURORA_RESTORE_DATA", "").strip()
    state = env.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local/state")
    return Settings(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token,
        api_url=api_url,
        clusters=clusters,
        port=int(raw_port),
        data_dir=Path(data) if data else Path(state) / "aurora-restore",
    )

"""Settings of the Slack app, from the environment.

A missing or malformed setting stops the start with one message naming it; no value of
a secret is ever printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runbook import redact
from runbook.clusters import Cluster, ClusterFileError, load_clusters, parse_duration

DEFAULT_API_URL = "https://slack.com/api/"


class SettingsError(ValueError):
    """One line naming the setting that is missing or wrong."""


DEFAULT_RETENTION = "90d"


@dataclass(frozen=True)
class Settings:
    """Every environment variable the bot reads, read once (`from_env`) at start-up and
    handed down: no other module of runbook/, bot/ or handlers/ reads the environment.

    `from_env` parses what every command may use; the Slack commands then `for_slack`,
    which requires the tokens and loads the cluster file."""

    bot_token: str = ""
    signing_secret: str = ""
    app_token: str | None = None
    api_url: str = DEFAULT_API_URL
    clusters: dict[str, Cluster] = field(default_factory=dict)
    port: int = 3000
    data_dir: Path = field(default_factory=lambda: Path(".local/state/aurora-restore"))
    # AURORA_RESTORE_CLUSTERS: the cluster file's path ("" when not set).
    clusters_path: str = ""
    # REDIS_URL: None for the embedded store in data_dir.
    redis_url: str | None = None
    # AURORA_RESTORE_RETENTION, in seconds: how long finished restores stay in Redis.
    retention_seconds: int = 90 * 86400
    # AURORA_RESTORE_REDACT: extra patterns to mask, one regex a line.
    redact_patterns: str = ""
    # AURORA_RESTORE_UPDATES_PER_MINUTE / _BURST: the pace of Slack message updates.
    updates_per_minute: float = 50.0
    updates_burst: int = 20
    # PORT as written: checked by for_slack only (serve), so that a PORT set for
    # something else never stops the console.
    raw_port: str = ""

    def __repr__(self) -> str:  # never show the secrets
        return (
            f"Settings(api_url={self.api_url!r}, clusters={list(self.clusters)}, port={self.port})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable once (`environ`, else the process's environment); a
        malformed one raises SettingsError naming it. Nothing is required here."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "").strip()

        api_url = get("SLACK_API_URL") or DEFAULT_API_URL
        if not api_url.startswith(("https://", "http://")):
            raise SettingsError(f"SLACK_API_URL must be an http(s) URL, not {api_url!r}")
        if not api_url.endswith("/"):
            api_url += "/"
        data = get("AURORA_RESTORE_DATA")
        state = get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
        return cls(
            bot_token=get("SLACK_BOT_TOKEN"),
            signing_secret=get("SLACK_SIGNING_SECRET"),
            app_token=get("SLACK_APP_TOKEN") or None,
            api_url=api_url,
            data_dir=Path(data) if data else Path(state) / "aurora-restore",
            clusters_path=get("AURORA_RESTORE_CLUSTERS"),
            redis_url=get("REDIS_URL") or None,
            retention_seconds=_retention(get("AURORA_RESTORE_RETENTION")),
            redact_patterns=env.get("AURORA_RESTORE_REDACT", ""),
            updates_per_minute=_number(env, "AURORA_RESTORE_UPDATES_PER_MINUTE", 50.0, float),
            updates_burst=int(_number(env, "AURORA_RESTORE_UPDATES_BURST", 20, int)),
            raw_port=get("PORT"),
        )

    def apply_redaction(self) -> None:
        """Compile AURORA_RESTORE_REDACT and register the bot's own secrets (the tokens,
        the password inside REDIS_URL) so they are masked wherever they appear."""
        try:
            redact.configure(self.redact_patterns)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        _register_secrets([self.bot_token, self.signing_secret, self.app_token], self.redis_url)

    def for_slack(self, *, socket_mode: bool = False) -> Settings:
        """These settings checked for `serve` (or `socket`): the tokens present and of
        the right kind, PORT a port, and the cluster file loaded."""
        if not self.bot_token:
            raise SettingsError(
                "SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from the app's OAuth page"
            )
        if not self.bot_token.startswith("xoxb-"):
            raise SettingsError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if not socket_mode and not self.signing_secret:
            raise SettingsError(
                "SLACK_SIGNING_SECRET is not set: the signing secret from the app's Basic "
                "Information page"
            )
        if socket_mode:
            if not self.app_token:
                raise SettingsError(
                    "SLACK_APP_TOKEN is not set: an app-level token (xapp-...) with "
                    "connections:write, for Socket Mode"
                )
            if not self.app_token.startswith("xapp-"):
                raise SettingsError(
                    "SLACK_APP_TOKEN must be an app-level token starting with xapp-"
                )
        if not self.clusters_path:
            raise SettingsError(
                "AURORA_RESTORE_CLUSTERS is not set: the path of the cluster file (see README)"
            )
        try:
            clusters = load_clusters(Path(self.clusters_path))
        except ClusterFileError as exc:
            raise SettingsError(f"AURORA_RESTORE_CLUSTERS: {exc}") from None
        raw_port = self.raw_port or "3000"
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            raise SettingsError(f"PORT must be a port number, not {raw_port!r}")
        return replace(self, clusters=clusters, port=int(raw_port))


def _retention(raw: str) -> int:
    """AURORA_RESTORE_RETENTION (a duration like 90d, the default), in seconds."""
    try:
        return int(parse_duration(raw or DEFAULT_RETENTION).total_seconds())
    except ValueError:
        raise SettingsError(
            f"AURORA_RESTORE_RETENTION must be a duration like 90d, not {raw!r}"
        ) from None


def _number(
    env: Mapping[str, str], name: str, default: float, kind: type[float] | type[int]
) -> float:
    """A positive number setting, or its default when not set."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        what = "a positive whole number" if kind is int else "a positive number"
        raise SettingsError(f"{name} must be {what}, not {raw!r}")
    return value


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
    """The Slack app's settings: read once, checked, and the redaction applied."""
    settings = Settings.from_env(env).for_slack(socket_mode=socket_mode)
    settings.apply_redaction()
    return settings

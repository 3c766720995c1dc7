"""Settings from the environment: a missing or malformed one stops the start with one
message naming it, and never shows a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load
from tests.conftest import ROOT

CLUSTERS = '[[clusters.west.schedulers]]\nhost = "sched1"\n'


def env(tmp_path: Path, **over: str) -> dict[str, str]:
    f = tmp_path / "clusters.toml"
    f.write_text(CLUSTERS)
    base = {
        "SLACK_BOT_TOKEN": "xoxb-1-secret-token",
        "SLACK_SIGNING_SECRET": "shh-signing-secret",
        "AURORA_RESTORE_CLUSTERS": str(f),
        "HOME": str(tmp_path),
    }
    base.update(over)
    return {k: v for k, v in base.items() if v != "-"}


def test_defaults(tmp_path: Path) -> None:
    s = load(env(tmp_path))
    assert s.api_url == "https://slack.com/api/"
    assert s.port == 3000 and list(s.clusters) == ["west"]
    assert "secret" not in repr(s)
    gov = load(env(tmp_path, SLACK_API_URL="https://slack-gov.com/api", PORT="8080"))
    assert gov.api_url == "https://slack-gov.com/api/" and gov.port == 8080


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"SLACK_BOT_TOKEN": "-"}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xapp-wrong-kind"}, "SLACK_BOT_TOKEN must be a bot token"),
        ({"SLACK_SIGNING_SECRET": "-"}, "SLACK_SIGNING_SECRET is not set"),
        ({"AURORA_RESTORE_CLUSTERS": "-"}, "AURORA_RESTORE_CLUSTERS is not set"),
        (
            {"AURORA_RESTORE_CLUSTERS": "/nonexistent.toml"},
            "AURORA_RESTORE_CLUSTERS: /nonexistent.toml: no such file",
        ),
        ({"PORT": "eighty"}, "PORT must be a port number"),
        ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL must be an http(s) URL"),
        ({"AURORA_RESTORE_RETENTION": "forever"}, "AURORA_RESTORE_RETENTION must be a duration"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, over: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(env(tmp_path, **over))


def test_socket_mode_needs_an_app_token(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SLACK_APP_TOKEN is not set"):
        load(env(tmp_path, SLACK_SIGNING_SECRET="-"), socket_mode=True)
    s = load(
        env(tmp_path, SLACK_SIGNING_SECRET="-", SLACK_APP_TOKEN="xapp-1-abc"), socket_mode=True
    )
    assert s.app_token == "xapp-1-abc"


def test_serve_stops_with_one_line(tmp_path: Path) -> None:
    e = env(tmp_path, SLACK_SIGNING_SECRET="-")
    e["PATH"] = "/usr/bin:/bin"
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=ROOT,
        env=e,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "aurora-restore serve: SLACK_SIGNING_SECRET is not set: the signing secret from the app's Basic Information page"
    ]
    assert "secret-token" not in r.stderr


async def test_the_update_bucket_paces_calls() -> None:
    import time

    from bot.slack_front import TokenBucket

    bucket = TokenBucket(per_minute=600, burst=3)  # 10 a second after a burst of 3
    t0 = time.monotonic()
    for _ in range(8):
        await bucket.take()
    took = time.monotonic() - t0
    assert 0.4 <= took < 1.5  # 3 at once, then 5 at 10 a second

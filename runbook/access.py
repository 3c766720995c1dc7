"""Where a restore may be started from: the cluster file's `channels`, and never a
direct message. Pure (no Slack calls): the Slack front asks it before `Engine.start`.

A restore's thread is where the team sees, approves and audits every step; a direct
message or a group DM has no team in it, so no restore starts there (docs/slack-notes.md, "Where a restore may start": DM
channel ids start with `D`, and slash commands from them carry `channel_name`
`directmessage`; group DMs are named `mpdm-…`).
"""

from __future__ import annotations

from runbook.clusters import Cluster


def start_refusal(cluster: Cluster, channel_id: str, channel_name: str = "") -> str | None:
    """Why a restore of `cluster` may not start in this channel, or None when it may."""
    if (
        channel_id.startswith("D")
        or channel_name == "directmessage"
        or channel_name.startswith("mpdm-")
    ):
        return "A restore starts only in a channel, not in a direct message: nothing was started."
    if cluster.channels is not None and channel_id not in cluster.channels:
        allowed = ", ".join(f"<#{c}>" for c in cluster.channels) or "none"
        return (
            f"A restore of `{cluster.name}` starts only in {allowed} (the cluster file's "
            "`channels`): nothing was started."
        )
    return None

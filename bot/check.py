"""`aurora-restore check`: restore readiness against a live cluster (runbook.readiness).

Connects the way every front does (bot.wiring.connect: SSH with host keys checked, the
/vars probe and the cluster's ZooKeeper client), with bot.wiring's leader detector and
source check and bot.mesos for the kill forecast. No store: no restore is created and no lock is taken, so Redis is not needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook.clusters import Cluster
from runbook.readiness import (
    CLUSTER,
    Check,
    make_context,
    run_checks,
    to_html,
    to_json,
    to_markdown,
)
from runbook.step import Procedure


async def check_cluster(
    cluster: Cluster,
    remote: Any = None,
    probe: Any = None,
    *,
    detect: Any = None,
    sources: Any = None,
    mesos: Any = None,
) -> list[Check]:
    """Every readiness row for `cluster`. `remote`/`probe` (closed at the end) default to
    bot.wiring.connect's; detect, sources and mesos to bot.wiring's and bot.mesos's."""
    from bot import mesos as mesos_port, wiring

    if remote is None or probe is None:
        r, p = wiring.connect(cluster)
        remote, probe = remote or r, probe or p
    procedure, chosen = await _procedure(cluster, probe)
    ctx, _facts = make_context(
        cluster,
        remote,
        probe,
        procedure=procedure,
        detect=detect or wiring.detect_leader,
        sources=sources or wiring.check_leader_sources,
        mesos=mesos or mesos_port.running_tasks,
    )
    try:
        return [chosen, *await run_checks(ctx)]
    finally:
        for port in (remote, probe):
            close = getattr(port, "close", None)
            if close is not None:
                await close()


async def _procedure(cluster: Cluster, probe: Any) -> tuple[Procedure, Check]:
    """The procedure a restore of `cluster` would follow now (runbook.choice, as the
    engine chooses), and its row: the readiness check runs that procedure's preflight.
    A cluster whose procedure cannot be told fails the row and is checked as online."""
    from runbook.choice import CannotChoose, choose_cluster
    from runbook.procedure import ONLINE
    from runbook.procedures import PROCEDURES

    name = "procedure chosen"
    try:
        chosen, version, why = await choose_cluster(cluster, probe)
    except CannotChoose as exc:
        return ONLINE, Check(name, CLUSTER, False, f"{exc}; checked as the online procedure")
    shown = f"{chosen}" + (f" (Aurora {version})" if version else "") + f": {why}"
    return PROCEDURES[chosen], Check(name, CLUSTER, True, shown)


def slack_text(cluster: str, rows: list[Check], running: str | None, cap: int = 35000) -> str:
    """The table for Slack: a headline, the failures first, then every row in a code
    block (cut to `cap` characters); `running`: the restore of this cluster in progress."""
    from runbook.redact import redact

    failed = [r for r in rows if not r.ok]
    head = (
        f"*Restore readiness of `{cluster}`*: {len(rows) - len(failed)} pass, {len(failed)} fail"
        + (" ✅" if not failed else " ❌")
        + "\n_read-only: nothing changed, no lock taken_"
    )
    if running:
        head += (
            f"\n⚠️ a restore of `{cluster}` is in progress (`{running}`): what it changed shows here"
        )
    lines = [
        redact(Check(r.name, r.host, r.ok, r.cause).line())
        for r in failed + [r for r in rows if r.ok]
    ]
    body = "\n".join(lines).replace("```", "`​``")
    if len(body) > cap:
        body = body[:cap].rsplit("\n", 1)[0] + "\n…"
    return head + "\n```\n" + body + "\n```"


def write_reports(out: Path, cluster: str, rows: list[Check]) -> list[Path]:
    """check.md, check.json and check.html in `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "check.md": to_markdown(cluster, rows),
        "check.json": json.dumps(to_json(cluster, rows), indent=1) + "\n",
        "check.html": to_html(cluster, rows),
    }
    for name, text in files.items():
        (out / name).write_text(text)
    return [out / n for n in files]

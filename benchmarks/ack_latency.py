"""Ack latency of button clicks: the bot with 20 restores in progress, against a bare Bolt
app that only acks, on the same machine in the same run.

Starts the sandbox (3 hosts), a local double of the Slack Web API, the embedded store,
and `aurora-restore serve` with 20 clusters (the same sandbox hosts under 20 names).
Starts 20 restores with signed slash commands and waits until each waits for its first
approval. Then sends 200 signed `block_actions` clicks, 10 at a time: approvals by a
user who is not an approver (refused, with an ephemeral message and a thread line: the
full path after the ack) and, with `--approvals N`, N real approvals that run
`prep.stop` over SSH while the other clicks arrive. The bare app gets the same 200
clicks. Prints p50 and p99 of each.

    .venv/bin/python benchmarks/ack_latency.py

Target: p99 under 100 ms and within 1.5x of the bare app. Prints figures; not a test.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._ack import (  # noqa: E402
    CONCURRENCY,
    SECRET,
    SERVERS,
    AckRig,
    channel_of_cluster,
    clicks,
    pct,
    spawn,
)
from runbook.procedure import ONLINE, Risk  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.slack_double import block_actions_body  # noqa: E402

# The first step a person approves (the first changing step with no condition), and
# not by id.
FIRST_APPROVAL = next(s.id for s in ONLINE if s.risk is Risk.MUTATING and s.condition is None)

RESTORES = 20
CLICKS = 200
# Real approvals among the clicks: each runs prep.stop over SSH on the sandbox, which
# shares this machine's two cores with everything else (`--approvals N`, default 0).
APPROVALS = int(sys.argv[sys.argv.index("--approvals") + 1]) if "--approvals" in sys.argv else 0


async def waiting(rig: AckRig) -> list[str]:
    """The restores whose prep.stop waits for approval."""
    out = []
    for rid in await rig.store.restore_ids():
        rec = await rig.store.load(rid)
        if rec and rec.steps[FIRST_APPROVAL]["status"] == "awaiting":
            out.append(rid)
    return out


async def main() -> None:
    async with AckRig(RESTORES) as rig:
        bare_port = free_port()
        bare, _ = spawn(SERVERS, "bare", str(bare_port), rig.api, SECRET)
        rig.procs.append(bare)
        bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
        await rig.start_restores()
        deadline = time.monotonic() + 120
        while len(await waiting(rig)) < RESTORES and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        rids = await waiting(rig)
        channels = {}
        for rid in rids:
            rec = await rig.store.load(rid)
            assert rec is not None
            channels[rid] = channel_of_cluster(rec.meta["cluster"])
        bodies = []
        for i in range(CLICKS):
            rid = rids[i % len(rids)]
            user = "U0ALICE" if i < min(APPROVALS, len(rids)) else "U0MALLORY"
            bodies.append(
                block_actions_body(
                    user_id=user,
                    action_id="approve",
                    value=json.dumps({"rid": rid, "sid": FIRST_APPROVAL}),
                    channel_id=channels[rid],
                    message_ts="1700000000.000200",
                    thread_ts="1700000000.000100",
                )
            )
        bot_times = await clicks(rig.client, rig.url, bodies)
        bare_times = await clicks(rig.client, bare_url, bodies)
    print(
        f"{RESTORES} restores in progress ({len(rids)} waiting at the first click), {CLICKS} "
        f"clicks ({APPROVALS} real approvals running SSH steps), {CONCURRENCY} at a time"
    )
    print(f"{'app':<28}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, t in (("aurora-restore serve", bot_times), ("bare Bolt app (ack only)", bare_times)):
        print(f"{name:<28}{pct(t, 50):>10.1f}{pct(t, 99):>10.1f}{max(t) * 1000:>10.1f}")
    ratio = pct(bot_times, 99) / max(pct(bare_times, 99), 1e-6)
    print(f"p99 ratio {ratio:.2f}x (target <= 1.5x); p99 under 100 ms: {pct(bot_times, 99) < 100}")


if __name__ == "__main__":
    asyncio.run(main())

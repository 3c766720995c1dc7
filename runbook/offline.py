"""The offline restore procedure (Aurora 0.21 and later): `recovery-tool`, as data.

Aurora's page from rel/0.21.0 on (`docs/operations/backup-restore.md`, apache/aurora):
stop every scheduler; delete and `mesos-log initialize` every replica; run
`recovery-tool -from BACKUP -to LOG -backup=<file> -native_log_file_path=…
-native_log_zk_group_path=… -zk_endpoints=…` on one scheduler; start it with enough
blank ones to reach `-native_log_quorum_size`, then the rest. The tool is
`src/main/java/org/apache/aurora/scheduler/storage/durability/RecoveryTool.java`; it
copies the backup's snapshot into the log with `Recovery.copy`, which first refuses a
target that is not empty ("Refusing to recover into non-empty persistence",
`Recovery.java`).

What the page leaves out, the steps add:

- **Proof before change.** Preflight is the online one (the backup decoded, the kill
  forecast, sudo, the quorum) plus: `recovery-tool` present and executable on every host
  (Debian's `/usr/share/aurora/bin`, the RPM's `/usr/lib/aurora/bin`, or the cluster
  file's `recovery_tool`), allowed by `sudo -n -l` as the scheduler's user with the exact
  arguments it will get, its flags read from each scheduler's own argv (as the packaged
  startup script computes it), and each host's libprocess port (`LIBPROCESS_PORT`,
  `LIBPROCESS_IP` in the environment file) to read the replica's `log/recovered`.
- **The tool's quorum.** `recovery-tool` parses `-native_log_quorum_size` (default 1).
  Every other scheduler is stopped while it runs, so it gets `-native_log_quorum_size=1`
  explicitly: with the HA value it would wait for replicas that are not there.
- **The start order.** A quorum of blank replicas alone elects a leader over an empty log
  (and that scheduler reconciles with Mesos and kills every task). So: nothing starts
  with its normal flags from the wipe until `recovery-tool` succeeded (the engine's
  empty-log window: `empties_log` on the wipe, `fills_log` on the tool); then the
  rehydrated scheduler starts first, alone, and must come up; then the blank ones, one at
  a time, each gated on its replica reporting `log/recovered` = 1 on libprocess's
  `/metrics/snapshot` (Aurora's `docs/operations/upgrades.md`), first up to the quorum,
  then the rest. Each blank start is refused while the rehydrated scheduler is not up.
- **The check at the end.** One leader ACTIVE whose task store holds the backup's active
  tasks, and (with `mesos_master`) no more kills than forecast.

Step ids are named here only; the engine, the views and the transcript use roles
(runbook.step).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runbook import commands as cmd, envfile, snapshot
from runbook.actions import (
    ACTIVE_STATES,
    FINISHED,
    IS_ACTIVE,
    LOG_TAIL,
    NOT_RUN,
    UNKNOWN,
    UP_DISABLED,
    UP_NORMAL,
    WIPE_PREVIEW,
    WIPED,
    Outcome,
    StepContext,
    _detect,
    _failures,
    _verdict,
    _wait_for_leader,
    active_task_count,
    came_up,
    check_initialized,
    check_stopped,
    disable,
    host_paths,
    host_values,
    lifecycle,
    observe_kills,
    render_for,
    stop,
    table_rows,
)
from runbook.clusters import HOST_RE, RECOVERY_TOOL_CANDIDATES, Cluster, Scheduler
from runbook.preflight import _check_sudo, _failed, flag_value, preflight
from runbook.procedure import ONLINE
from runbook.step import Procedure, Risk, Role, Step, Targets

# ---------------------------------------------------------------- command templates

# recovery-tool's own flags and the log's (JCommander, `-name=value`): RecoveryTool.java
# adds the options of MesosLogStreamModule, LogPersistenceModule and FlaggedZooKeeperConfig.
RECOVER = (
    "sudo -n -u {scheduler_user} {recovery_tool} -from BACKUP -to LOG -backup={backup_path} "
    "-native_log_file_path={log_dir} -native_log_zk_group_path={zk_group} "
    "-zk_endpoints={zk_endpoints} -native_log_quorum_size=1"
)
LOG_BYTES = "sudo -n du -sb {log_dir}"
# The tool's log lines (Recovery.java): "Recovery finished", "Copied <n> ops in <ms> ms".
COPIED_RE = re.compile(r"Copied (\d+) ops")
REFUSED_NON_EMPTY = "Refusing to recover into non-empty persistence"

# Where libprocess listens, as the packaged startup script exports it
# (`export GLOG_v LIBPROCESS_PORT LIBPROCESS_IP`, specs/debian/aurora-scheduler.startup.sh;
# the RPM's sysconfig sets LIBPROCESS_PORT too): the file sourced by bash in a clean
# environment, the two values printed NUL-terminated.
LIBPROCESS_SCRIPT = (
    'f=$1; [ -r "$f" ] || { echo "cannot read $f" >&2; exit 2; }\n'
    'exec env -i PATH="$PATH" "$BASH" --noprofile --norc -c '
    + shlex.quote(
        "builtin cd / || exit 3\n"
        'builtin source "$1" >&2\n'
        'builtin printf "%s\\0%s\\0" "${LIBPROCESS_IP-}" "${LIBPROCESS_PORT-}"\n'
    )
    + ' aurora-scheduler-startup "$f"\n'
)
LIBPROCESS_NOW = "bash -c " + shlex.quote(LIBPROCESS_SCRIPT) + " _ {env_file}"


# ---------------------------------------------------------------- values and targets


def zk_endpoints(value: str) -> str:
    """`host:port,host:port` as `-zk_endpoints` takes it (FlaggedZooKeeperConfig), each
    host a host name or IPv4 address and each port a port; cmd.InvalidValue otherwise."""
    if not isinstance(value, str) or not value:
        raise cmd.InvalidValue(f"not a list of ZooKeeper host:port: {value!r}")
    for part in value.split(","):
        host, _, port = part.rpartition(":")
        if not HOST_RE.fullmatch(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise cmd.InvalidValue(f"not a list of ZooKeeper host:port: {value!r}")
    return value


def tool_values(cluster: Cluster, s: Scheduler, facts: Mapping[str, Any]) -> dict[str, str]:
    """The values RECOVER needs on one host, once the offline preflight learnt them,
    validated again whenever a command is rendered (they were read from the host)."""
    learnt: Mapping[str, str] = (facts.get("tool_values") or {}).get(s.host) or {}
    out = {}
    if learnt.get("recovery_tool"):
        out["recovery_tool"] = cmd.path(learnt["recovery_tool"])
    if learnt.get("zk_group"):
        out["zk_group"] = cmd.path(learnt["zk_group"])
    if learnt.get("zk_endpoints"):
        out["zk_endpoints"] = zk_endpoints(learnt["zk_endpoints"])
    return out


def blanks(cluster: Cluster, facts: Mapping[str, Any]) -> list[str]:
    """Every scheduler but the rehydrated one, in the cluster file's order."""
    chosen = facts.get("rehydrate")
    return [s.host for s in cluster.schedulers if s.host != chosen]


def quorum_size(facts: Mapping[str, Any]) -> int:
    return int(facts.get("quorum_size") or 1)


def target_hosts(cluster: Cluster, targets: Targets, facts: Mapping[str, Any]) -> list[str]:
    """The hosts of the offline procedure's targets: the rehydrated scheduler (none until
    chosen); the blank ones that, with it, make the quorum; the blank ones after."""
    if not facts.get("rehydrate"):
        return []
    if targets is Targets.REHYDRATED:
        return [facts["rehydrate"]]
    cut = max(quorum_size(facts) - 1, 0)
    if targets is Targets.QUORUM:
        return blanks(cluster, facts)[:cut]
    if targets is Targets.REST:
        return blanks(cluster, facts)[cut:]
    if targets is Targets.REVIEWERS:
        return [facts["rehydrate"], *blanks(cluster, facts)[:cut]]
    raise KeyError(targets)


# ---------------------------------------------------------------- preflight


def _tool_candidates(cluster: Cluster, s: Scheduler) -> tuple[str, ...]:
    configured = cluster.path(s, "recovery_tool")
    return (configured,) if configured else RECOVERY_TOOL_CANDIDATES


async def _find_tools(ctx: StepContext) -> tuple[dict[str, str], list[str]]:
    """host → recovery-tool's path: the configured one (the scheduler's own wins over the
    cluster's), else the first package path (Debian's, then the RPM's) where a file is
    executable."""
    probes = {}
    for s in ctx.cluster.schedulers:
        words = " ".join(shlex.quote(c) for c in _tool_candidates(ctx.cluster, s))
        probes[s.host] = (
            f'for f in {words}; do if [ -f "$f" ] && [ -x "$f" ]; then echo "$f"; exit 0; fi; '
            "done; exit 1"
        )
    res = await ctx.run(probes, record=False)
    tools: dict[str, str] = {}
    problems: list[str] = []
    for h, r in res.items():
        candidates = _tool_candidates(ctx.cluster, ctx.sched(h))
        configured = ctx.cluster.path(ctx.sched(h), "recovery_tool")
        found = r.stdout.strip().splitlines()[0] if r.ok and r.stdout.strip() else ""
        if found in candidates:
            tools[h] = found
        elif configured:
            problems.append(
                f"{h}: recovery-tool is not an executable file at {configured} "
                "(recovery_tool in the cluster file)"
            )
        else:
            problems.append(
                f"{h}: no executable recovery-tool at {' or '.join(RECOVERY_TOOL_CANDIDATES)} "
                "(Debian's, the RPM's); set recovery_tool in the cluster file"
            )
    return tools, problems


def _tool_flags(
    ctx: StepContext, h: str, argv: list[str]
) -> tuple[dict[str, str], str | None, list[str]]:
    """recovery-tool's flags on host `h`, from the scheduler's own argv ("wherever the
    flags match those used for the scheduler instance, use the same values"): (values,
    the quorum size, problems)."""
    problems: list[str] = []
    values: dict[str, str] = {}
    log_dir = ctx.cluster.path(ctx.sched(h), "native_log_file_path") or host_paths(
        ctx.facts, h
    ).get("log_dir")
    in_argv = flag_value(argv, "-native_log_file_path")
    if in_argv is not None and log_dir and in_argv.rstrip("/") != log_dir.rstrip("/"):
        problems.append(
            f"{h}: the scheduler's -native_log_file_path is {in_argv}, not {log_dir} "
            "(native_log_file_path in the cluster file): the tool would fill another log"
        )
    group = flag_value(argv, "-native_log_zk_group_path")
    try:
        values["zk_group"] = cmd.path(group or "")
    except cmd.InvalidValue:
        problems.append(
            f"{h}: the scheduler's argv has no usable -native_log_zk_group_path ({group!r}): "
            "recovery-tool needs it"
        )
    endpoints = flag_value(argv, "-zk_endpoints") or ctx.cluster.zk_endpoints
    try:
        values["zk_endpoints"] = zk_endpoints(endpoints or "")
    except cmd.InvalidValue:
        problems.append(
            f"{h}: no usable -zk_endpoints in the scheduler's argv or the cluster file "
            f"({endpoints!r}): recovery-tool needs it"
        )
    if flag_value(argv, "-zk_digest_credentials") is not None:
        problems.append(
            f"{h}: the scheduler uses -zk_digest_credentials: recovery-tool would need the "
            "secret on its command line, which the bot does not do; restore by hand"
        )
    quorum = flag_value(argv, "-native_log_quorum_size") or "1"
    return values, quorum, problems


async def _libprocess(ctx: StepContext) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """host → {"address", "port"} where its libprocess (the replica's metrics) listens:
    LIBPROCESS_IP when set to one address, else the host's own address, and
    LIBPROCESS_PORT, as the environment file sets them."""
    res = await ctx.run(render_for(ctx, LIBPROCESS_NOW, ctx.hosts), record=False)
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for h, r in res.items():
        env = host_paths(ctx.facts, h).get("env_file", "the environment file")
        records = r.stdout.split("\0")
        if not r.ok or len(records) != 3:
            problems.append(f"{h}: {env} does not evaluate: {'; '.join(_failures({h: r}))}")
            continue
        ip, port = records[0].strip(), records[1].strip()
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(
                f"{h}: {env} sets no LIBPROCESS_PORT ({port!r}): the replica's log/recovered "
                "cannot be read to gate the starts (the packages set 8083)"
            )
            continue
        address = ctx.sched(h).connect_address
        if ip and ip not in ("0.0.0.0", "::"):
            try:
                address = cmd.host(ip)
            except cmd.InvalidValue:
                problems.append(f"{h}: LIBPROCESS_IP {ip!r} in {env} is not an address")
                continue
        out[h] = {"address": address, "port": int(port)}
    return out, problems


async def offline_preflight(ctx: StepContext) -> Outcome:
    """The online preflight, then what the offline procedure needs besides (module doc)."""
    first = await preflight(ctx)
    if not first.ok:
        return first
    problems: list[str] = []
    tools, missing = await _find_tools(ctx)
    problems += missing
    argvs: Mapping[str, list[str]] = ctx.facts.get("argv") or {}
    values: dict[str, dict[str, str]] = {}
    quorums: dict[str, str] = {}
    for h in ctx.hosts:
        flags, quorum, why = _tool_flags(ctx, h, argvs.get(h) or [])
        problems += why
        values[h] = {**flags, **({"recovery_tool": tools[h]} if h in tools else {})}
        if quorum is not None:
            quorums[h] = quorum
    libprocess, why = await _libprocess(ctx)
    problems += why
    # quorum_problems (preflight) already refused sizes that differ or are no majority.
    size = int(next(iter(quorums.values()), "1")) if quorums else 1
    ctx.facts.update(tool_values=values)
    await ctx.learn(
        tool_values=values, quorum_size=size, libprocess=libprocess, scheduler_count=len(ctx.hosts)
    )
    if not problems:
        # The exact command, as the scheduler's user, on every host: sudo -n -l allows it.
        problems += await _check_sudo(
            ctx, ("du -sb {log_dir}",), service=False
        ) + await _check_tool_sudo(ctx)
    holders = (ctx.facts.get("backups") or {}).get(ctx.facts.get("backup") or "", [])
    wanted = ctx.cluster.rehydrate
    if wanted is not None and wanted not in holders:
        problems.append(
            f"{wanted} (rehydrate in the cluster file) does not hold the backup "
            f"{ctx.facts.get('backup')}; the hosts that do: {', '.join(holders) or 'none'}"
        )
    if problems:
        return Outcome(False, _failed(problems))
    return Outcome(
        True,
        first.summary
        + f"\noffline: recovery-tool on every host ({', '.join(sorted(set(tools.values())))}); "
        f"quorum {size} of {len(ctx.hosts)}; the backup is on {', '.join(holders) or 'no host'}",
    )


async def _check_tool_sudo(ctx: StepContext) -> list[str]:
    """`sudo -n -u USER -l` of RECOVER exactly as it will run, on every host."""
    checks = {}
    for h, line in render_for(ctx, RECOVER, ctx.hosts).items():
        prefix = "sudo -n -u "
        user_and_rest = line.removeprefix(prefix)
        user, _, rest = user_and_rest.partition(" ")
        checks[h] = f"sudo -n -u {user} -l {rest} > /dev/null 2>&1"
    res = await ctx.run(checks, record=False)
    return [
        f"{h}: sudo -n refuses `{ctx.cluster.scheduler_user}`'s recovery-tool as it would run: "
        + render_for(ctx, RECOVER, [h])[h].removeprefix("sudo -n ")
        for h, r in res.items()
        if not r.ok
    ]


# ---------------------------------------------------------------- the steps


async def choose_rehydrated(ctx: StepContext) -> Outcome:
    """The scheduler recovery-tool fills: the one the operator named in the cluster file
    (`rehydrate`; it must hold the backup), else the preflight's leader when it holds it, else the first holder in the
    cluster file's order."""
    backup = ctx.facts.get("backup")
    holders = list((ctx.facts.get("backups") or {}).get(backup or "", []))
    if not backup or not holders:
        return Outcome(False, f"no scheduler holds the backup {backup or '(none chosen)'}")
    wanted = ctx.cluster.rehydrate
    if wanted:
        if wanted not in ctx.hosts:
            return Outcome(False, f"{wanted!r} is not a scheduler of {ctx.cluster.name}")
        if wanted not in holders:
            return Outcome(
                False, f"{wanted} does not hold {backup}; the hosts that do: {', '.join(holders)}"
            )
        chosen, why = wanted, "named by rehydrate in the cluster file"
    elif ctx.facts.get("preflight_leader") in holders:
        chosen, why = ctx.facts["preflight_leader"], "it led at preflight and holds the backup"
    else:
        chosen = next(h for h in ctx.hosts if h in holders)
        why = "the first scheduler holding the backup"
    await ctx.learn(rehydrate=chosen)
    order = [chosen, *blanks(ctx.cluster, ctx.facts)]
    q = quorum_size(ctx.facts)
    return Outcome(
        True,
        f"rehydrate {chosen} ({why}); start order: {' → '.join(order)} "
        f"(quorum {q}: {', '.join(order[:q])} first)",
    )


async def _others_down(ctx: StepContext, hosts: list[str]) -> list[str]:
    """Those of `hosts` whose scheduler answers /vars (it runs)."""
    got = await ctx.vars()
    return [h for h in hosts if lifecycle(got.get(h, "no answer")) != "DOWN"]


async def all_down(ctx: StepContext) -> str | None:
    """Precondition of the tool and of the first start: the step's own hosts stopped
    (their service inactive), and no other scheduler answering /vars."""
    chosen = ctx.facts.get("rehydrate")
    if not chosen:
        return "no scheduler was chosen to rehydrate"
    own = await check_stopped_on(ctx, ctx.targets())
    if own is not None:
        return own
    running = await _others_down(ctx, blanks(ctx.cluster, ctx.facts))
    if running:
        return f"every other scheduler must be stopped first: {', '.join(running)} answer /vars"
    return None


async def check_stopped_on(ctx: StepContext, hosts: list[str]) -> str | None:
    res = await ctx.run(render_for(ctx, "{!is_active}", hosts), record=False)
    states = {h: (r.stdout.strip() or r.error or f"exit {r.exit_status}") for h, r in res.items()}
    bad = {h: s for h, s in states.items() if s not in ("inactive", "failed", "unknown")}
    return f"every scheduler must be stopped first: still running: {bad}" if bad else None


async def init_log(ctx: StepContext) -> Outcome:
    """`mesos-log initialize` as the scheduler's user on every host; the size of each
    fresh replica is kept, so a check can tell later whether recovery-tool wrote into it."""
    results = await ctx.run(render_for(ctx, INIT))
    failures = _failures(results)
    if failures:
        return Outcome(False, "; ".join(failures))
    sizes = await _log_bytes(ctx, ctx.hosts)
    await ctx.learn(init_bytes=sizes)
    return Outcome(True, "exit 0 everywhere; every replica initialised")


INIT = "sudo -n -u {scheduler_user} {!mesos_log} initialize --path={log_dir}"


async def _log_bytes(ctx: StepContext, hosts: list[str]) -> dict[str, int | None]:
    res = await ctx.run(render_for(ctx, LOG_BYTES, hosts), record=False)
    out: dict[str, int | None] = {}
    for h, r in res.items():
        words = r.stdout.split()
        out[h] = int(words[0]) if r.ok and words and words[0].isdigit() else None
    return out


async def recover(ctx: StepContext) -> Outcome:
    """recovery-tool on the rehydrated scheduler: the backup becomes its log."""
    host = ctx.facts.get("rehydrate")
    if not host:
        return Outcome(False, "no scheduler was chosen to rehydrate")
    r = (await ctx.run(render_for(ctx, RECOVER, [host])))[host]
    said = (r.stderr + "\n" + r.stdout).strip()
    if not r.ok:
        if REFUSED_NON_EMPTY in said:
            return Outcome(
                False,
                f"{host}: recovery-tool refused: {REFUSED_NON_EMPTY} (the replica was not wiped "
                "and initialised, or the tool already wrote into it)",
            )
        return Outcome(False, "; ".join(_failures({host: r})))
    copied = COPIED_RE.findall(said)
    await ctx.learn(recovered_on=host)
    ops = f", {copied[-1]} ops copied" if copied else ""
    return Outcome(True, f"recovery-tool wrote {ctx.facts.get('backup')} into {host}'s log{ops}")


async def check_recovered(ctx: StepContext) -> Outcome:
    """After an interruption: the replica as `mesos-log initialize` left it (same size)
    means the tool did not run; anything else cannot be told from outside."""
    host = ctx.facts.get("rehydrate")
    if not host:
        return _verdict(False, "no scheduler was chosen to rehydrate", NOT_RUN)
    now = (await _log_bytes(ctx, [host])).get(host)
    before = (ctx.facts.get("init_bytes") or {}).get(host)
    if now is not None and before is not None and now == before:
        return _verdict(False, f"{host}'s replica is as initialised ({now} bytes)", NOT_RUN)
    return _verdict(
        False,
        f"{host}'s replica changed since it was initialised ({before} → {now} bytes): the tool "
        "may have finished or stopped half-way; a retry is refused by the tool on a log that "
        "is not empty, so abort and put the old log back, or wipe and initialise by hand",
        UNKNOWN,
    )


async def _recovered(ctx: StepContext, host: str, wait: float) -> Outcome:
    """Wait (bounded) until `host`'s replica reports `log/recovered` = 1."""
    where = (ctx.facts.get("libprocess") or {}).get(host)
    metrics = getattr(ctx.probe, "metrics", None)
    if where is None or metrics is None:
        return Outcome(False, f"{host}: its replica's metrics cannot be read (no libprocess port)")
    deadline = time.monotonic() + wait
    while True:
        got = (await metrics({host: (where["address"], where["port"])}, ctx.timing.vars_timeout))[
            host
        ]
        value = got.get("log/recovered") if isinstance(got, dict) else None
        if value == 1:
            return Outcome(True, f"{host}: log/recovered 1")
        if time.monotonic() >= deadline:
            seen = got if isinstance(got, str) else f"log/recovered {value}"
            return Outcome(
                False,
                f"{host}'s replica did not catch up within {wait:g}s ({seen} on "
                f"{where['address']}:{where['port']}/metrics/snapshot)",
            )
        await asyncio.sleep(ctx.timing.poll)


def _start_wait(ctx: StepContext) -> float:
    from runbook.clusters import parse_duration

    return min(ctx.timing.start_wait, parse_duration(ctx.cluster.start_wait).total_seconds())


async def rehydrated_up(ctx: StepContext) -> str | None:
    """Precondition of every blank start: the rehydrated scheduler came up first."""
    chosen = ctx.facts.get("rehydrate")
    if not chosen or ctx.facts.get("recovered_on") != chosen:
        return "recovery-tool has not filled a replica yet: no blank scheduler may start"
    state = lifecycle((await ctx.vars()).get(chosen, "no answer"))
    if state not in UP_NORMAL:
        return f"the rehydrated scheduler {chosen} must be up first (/vars: {state})"
    return None


async def start_rehydrated(ctx: StepContext) -> Outcome:
    """The rehydrated scheduler starts first, alone, with its normal flags."""
    host = ctx.facts.get("rehydrate")
    if not host or ctx.facts.get("recovered_on") != host:
        return Outcome(False, "recovery-tool has not filled a replica: nothing may start")
    running = await _others_down(ctx, blanks(ctx.cluster, ctx.facts))
    if running:
        return Outcome(
            False, f"a blank scheduler runs before the rehydrated one: {', '.join(running)}"
        )
    r = await ctx.run(render_for(ctx, "{!service_start}", [host]))
    if not r[host].ok:
        return Outcome(False, "; ".join(_failures(r)))
    return await came_up(ctx, [host], UP_NORMAL)


async def start_blanks(ctx: StepContext) -> Outcome:
    """The step's blank schedulers, one at a time, each after the rehydrated one is up
    and each gated on its replica having caught up (`log/recovered` = 1)."""
    done = []
    for host in ctx.targets():
        why = await rehydrated_up(ctx)
        if why is not None:
            return Outcome(False, f"{host} not started: {why}")
        r = await ctx.run(render_for(ctx, "{!service_start}", [host]))
        if not r[host].ok:
            return Outcome(False, "; ".join(_failures(r)))
        up = await came_up(ctx, [host], UP_NORMAL)
        if not up.ok:
            return up
        caught = await _recovered(ctx, host, _start_wait(ctx))
        if not caught.ok:
            return caught
        done.append(host)
    return Outcome(True, f"started one at a time, each caught up: {', '.join(done) or 'none'}")


async def check_started(ctx: StepContext) -> Outcome:
    """After an interruption: each of the step's hosts up on /vars and caught up."""
    hosts = ctx.targets()
    up = await came_up(ctx, hosts, UP_NORMAL, 5.0)
    if not up.ok:
        states = up.details.get("states") or {}
        if all(s == "DOWN" for s in states.values()):
            return _verdict(False, "none of them runs", NOT_RUN)
        return _verdict(False, up.summary.splitlines()[0], UNKNOWN)
    if ctx.step.targets is not Targets.REHYDRATED:
        for h in hosts:
            caught = await _recovered(ctx, h, 0)
            if not caught.ok:
                return _verdict(False, caught.summary, UNKNOWN)
    return _verdict(True, up.summary, FINISHED)


def backup_active_tasks(facts: Mapping[str, Any]) -> int | None:
    """The active tasks of the backup, as preflight decoded it (runbook.snapshot)."""
    counts = (facts.get("backup_info") or {}).get("counts_by_status")
    if counts is None:
        return None
    return int(sum(n for status, n in counts.items() if status in snapshot.ACTIVE_STATES))


async def verify(ctx: StepContext) -> Outcome:
    """One leader ACTIVE, agreed by every source, holding the backup's active tasks."""
    leader, table, problems = await _detect(ctx, "ACTIVE", ctx.timing.verify_wait)
    if leader is None:
        return Outcome(
            False,
            f"no agreed ACTIVE leader within {ctx.timing.verify_wait:g}s: "
            + "; ".join(problems)
            + "\n"
            + table_rows(table),
        )
    v = (await ctx.vars())[leader]
    active = active_task_count(v) if isinstance(v, dict) else None
    expected = backup_active_tasks(ctx.facts)
    await ctx.learn(verified_leader=leader, active_tasks=active, leader=leader)
    compared = (
        f"task_store_<S> over the active states ({', '.join(ACTIVE_STATES)}) = {active}, "
        f"the backup's {expected}"
    )
    observed = await observe_kills(ctx)
    if observed is not None and not observed.ok:
        return observed
    kills = f"; {observed.summary}" if observed is not None else ""
    if active is None or expected is None:
        return Outcome(
            False, f"{leader} is ACTIVE but the task count cannot be compared: {compared}"
        )
    if active != expected:
        return Outcome(False, f"{leader} is ACTIVE, but {compared}{kills}")
    return Outcome(True, f"{leader} is ACTIVE with the backup's {active} active tasks{kills}")


def has_blank_quorum(facts: Mapping[str, Any]) -> bool:
    """The cluster needs blank schedulers to reach its quorum (quorum size above 1)."""
    return quorum_size(facts) > 1


def has_rest(facts: Mapping[str, Any]) -> bool:
    """Some blank schedulers are left once the quorum is up (the count of schedulers is
    what the offline preflight learnt)."""
    hosts = int(facts.get("scheduler_count") or 0)
    return hosts > max(quorum_size(facts), 1)


# ---------------------------------------------------------------- the review window
#
# Aurora's offline page has none: the rehydrated scheduler registers and reconciles as
# soon as it starts. Here the team may first start it, and the blank ones of the quorum
# (a lone replica cannot lead), with the online procedure's disabled flags (no Mesos
# master, no reconciliation: nothing registers, nothing is killed), read what the leader
# restored against the backup, then stop them and put every file back byte for byte
# before the real start order. Skipping `review_disable` skips the whole window.


async def review_disable(ctx: StepContext) -> Outcome:
    """Every environment file disabled (runbook.envfile.disable), as prep.disable does."""
    done = await disable(ctx)
    if done.ok:
        await ctx.learn(review_disabled=True)
    return done


def review_was_disabled(facts: Mapping[str, Any]) -> bool:
    return bool(facts.get("review_disabled"))


def review_was_started(facts: Mapping[str, Any]) -> bool:
    return bool(facts.get("review_started"))


async def review_ready(ctx: StepContext) -> str | None:
    """Precondition of the disabled start: every scheduler down, every file disabled."""
    why = await all_down(ctx)
    if why is not None:
        return why
    problems = []
    for h in ctx.targets():
        path = host_values(ctx.cluster, ctx.sched(h), ctx.facts)["env_file"]
        try:
            text = (await ctx.remote.read_file(h, path)).decode(errors="replace")
        except Exception as exc:  # one line per host
            problems.append(f"{h}: cannot read {path}: {getattr(exc, 'reason', None) or exc}")
            continue
        problems += [f"{h}: {p}" for p in envfile.check_disabled(text)]
    return f"the files are not disabled: {'; '.join(problems)}" if problems else None


async def review_start(ctx: StepContext) -> Outcome:
    """The rehydrated scheduler first, then the blank ones of the quorum, one at a time,
    each caught up, all disabled; then a leader that waits for a registration."""
    started = []
    for host in ctx.targets():
        r = await ctx.run(render_for(ctx, "{!service_start}", [host]))
        if not r[host].ok:
            return Outcome(False, "; ".join(_failures(r)))
        up = await came_up(ctx, [host], UP_DISABLED)
        if not up.ok:
            return up
        if host != ctx.facts.get("rehydrate"):
            caught = await _recovered(ctx, host, _start_wait(ctx))
            if not caught.ok:
                return caught
        started.append(host)
        await ctx.learn(review_started=True)
    # /vars alone: this step's plan holds its own commands, not the leader sources' reads.
    leader, states = await _wait_for_leader(ctx, "LEADER_AWAITING_REGISTRATION", _start_wait(ctx))
    if leader is None:
        shown = ", ".join(f"{h} {st}" for h, st in states.items())
        return Outcome(False, f"no disabled leader came up within {_start_wait(ctx):g}s ({shown})")
    await ctx.learn(review_leader=leader)
    return Outcome(True, f"disabled, started in order: {' → '.join(started)}; leader {leader}")


async def check_review_started(ctx: StepContext) -> Outcome:
    hosts = ctx.targets()
    up = await came_up(ctx, hosts, UP_DISABLED, 5.0)
    if up.ok:
        return _verdict(True, up.summary, FINISHED)
    states = up.details.get("states") or {}
    if all(v == "DOWN" for v in states.values()):
        return _verdict(False, "none of them runs", NOT_RUN)
    return _verdict(False, up.summary.splitlines()[0], UNKNOWN)


def _counts(v: Mapping[str, str]) -> dict[str, int]:
    out = {}
    for status in ACTIVE_STATES:
        raw = v.get(f"task_store_{status}")
        if raw is not None:
            try:
                out[status] = int(float(raw))
            except ValueError:
                continue
    return out


async def review_preview(ctx: StepContext) -> dict[str, Any]:
    """What the disabled leader restored (its task store, by active status) beside what
    the backup holds (runbook.snapshot, decoded at preflight)."""
    leader = ctx.facts.get("review_leader")
    if not leader:
        return {"error": "no disabled leader to read"}
    v = (await ctx.vars()).get(leader, "no answer")
    if not isinstance(v, dict):
        return {"error": f"{leader} does not answer /vars: {v}"}
    restored = _counts(v)
    counts = (ctx.facts.get("backup_info") or {}).get("counts_by_status") or {}
    backup = {s: n for s, n in counts.items() if s in snapshot.ACTIVE_STATES}
    return {
        "leader": leader,
        "count": sum(restored.values()),
        "restored_by_status": restored,
        "backup_by_status": backup,
        "matches": {k: n for k, n in restored.items() if n} == backup,
    }


async def review(ctx: StepContext) -> Outcome:
    """Approving says: the restored tasks are the ones to keep."""
    seen = await review_preview(ctx)
    await ctx.learn(offline_review=seen)
    if "error" in seen:
        return Outcome(False, seen["error"])
    shown = ", ".join(f"{n} {s}" for s, n in sorted(seen["restored_by_status"].items()) if n)
    if not seen["matches"]:
        return Outcome(
            False,
            f"{seen['leader']} restored {shown or 'no task'}, but the backup holds "
            + ", ".join(f"{n} {s}" for s, n in sorted(seen["backup_by_status"].items())),
        )
    await ctx.learn(reviewed_count=seen["count"])
    return Outcome(True, f"listing of {seen['count']} tasks reviewed on {seen['leader']} ({shown})")


async def review_stop(ctx: StepContext) -> Outcome:
    """Every scheduler stopped again after the review."""
    done = await stop(ctx)
    if done.ok:
        await ctx.learn(review_started=False, review_leader=None)
    return done


# ---------------------------------------------------------------- the procedure as data

PREPARATION = "Preparation"
RELOG = "Empty and initialise the replicated log"
RESTORE = "Write the backup into one replica"
REVIEW = "Review window (optional, disabled)"
BRING_BACK = "Bring the schedulers back, the rehydrated one first"
END = "Verify"


def _as(online_id: str, offline_id: str, **changes: Any) -> Step:
    """A step the offline procedure shares with the online one (same commands, checks
    and behaviour), under its own id and with the changes given."""
    return replace(ONLINE.step(online_id), id=offline_id, **changes)


OFFLINE_STEPS: tuple[Step, ...] = (
    Step(
        id="offline.preflight",
        role=Role.PREFLIGHT,
        phase=PREPARATION,
        title="Preflight: reach every scheduler, prove the backup, find recovery-tool",
        explain=(
            "Everything the online preflight checks (SSH, the environment files kept as "
            "originals, sudo, the backup decoded and its kills forecast, the quorum), and: "
            "recovery-tool present and executable on every host, allowed by `sudo -n` as "
            "the scheduler's user with its exact arguments, its flags taken from each "
            "scheduler's own argv, and where each replica's libprocess metrics are read."
        ),
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=("cat {env_file}", "ls -1 {backup_dir}", "{!is_active}"),
        check="every gate passed; originals stored",
        skippable=False,
        fail_ends_restore=True,
        run=offline_preflight,
    ),
    _as("prep.ack_backup", "offline.ack_backup", phase=PREPARATION),
    _as(
        "prep.stop",
        "offline.stop",
        phase=PREPARATION,
        explain="Stop every scheduler instance, in parallel: recovery-tool runs with all of them down.",
    ),
    _as(
        "log.archive",
        "offline.archive",
        phase=RELOG,
        explain=(
            "Keep the old log for the way back and for forensics: pack the native log "
            "directory into a dated tarball next to it, after checking there is room."
        ),
    ),
    _as(
        "log.wipe",
        "offline.wipe",
        phase=RELOG,
        explain=(
            "Delete every file under the native log directory on every scheduler. From "
            "here until recovery-tool succeeded no scheduler may start with its normal flags."
        ),
        reads=(WIPED, IS_ACTIVE, WIPE_PREVIEW),
    ),
    Step(
        id="offline.init",
        phase=RELOG,
        title="Initialise the replicated log",
        explain=(
            "`mesos-log initialize` on every scheduler, as the scheduler's own user so that "
            "the new files belong to it (the page's `sudo su -u` is `sudo -u`)."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=(INIT,),
        check="exit 0 everywhere",
        reads=(WIPED, LOG_BYTES),
        run=init_log,
        verify=check_initialized,
    ),
    Step(
        id="offline.choose",
        phase=RESTORE,
        title="Choose the scheduler to rehydrate",
        explain=(
            "recovery-tool writes the backup into one replica: the scheduler the operator "
            "named, else the one that led at preflight when it holds the backup, else the "
            "first that holds it. It starts first; the others follow, blank."
        ),
        targets=Targets.BOT,
        risk=Risk.MUTATING,
        commands=(),
        check="one scheduler chosen, holding the backup",
        skippable=False,
        added=True,
        run=choose_rehydrated,
    ),
    Step(
        id="offline.recover",
        phase=RESTORE,
        title="Write the backup into the rehydrated scheduler's log (recovery-tool)",
        explain=(
            "`recovery-tool -from BACKUP -to LOG` on the chosen scheduler, as its user, "
            "with the scheduler's own log flags and `-native_log_quorum_size=1` (every other "
            "replica is down). It refuses a log that is not empty. The backup becomes the "
            "cluster's truth."
        ),
        targets=Targets.REHYDRATED,
        risk=Risk.DESTRUCTIVE,
        commands=(RECOVER,),
        check="exit 0; the tool says Recovery finished",
        skippable=False,
        fills_log=True,
        reads=(IS_ACTIVE, LOG_BYTES),
        run=recover,
        verify=check_recovered,
        precondition=all_down,
    ),
    _as(
        "prep.disable",
        "offline.review_disable",
        run=review_disable,
        phase=REVIEW,
        title="Review window (optional): disable every scheduler",
        explain=(
            "Optional, not in Aurora's page: put every environment file in the online "
            "procedure's disabled state (a Mesos master that does not exist, no "
            "reconciliation), so the rehydrated scheduler can be started and read before "
            "it registers. Skipping this skips the whole review window."
        ),
        suggest_skip=True,
        added=True,
    ),
    Step(
        id="offline.review_start",
        phase=REVIEW,
        title="Review window: start the rehydrated scheduler and the quorum, disabled",
        explain=(
            "Start the rehydrated scheduler, then the blank ones it needs for a quorum, one "
            "at a time (each caught up), all disabled; a leader comes up waiting for a "
            "registration that never comes."
        ),
        targets=Targets.REVIEWERS,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="a disabled leader (LEADER_AWAITING_REGISTRATION)",
        added=True,
        reads=(IS_ACTIVE, LOG_TAIL, "cat -- {env_file}"),
        run=review_start,
        verify=check_review_started,
        precondition=review_ready,
        condition=review_was_disabled,
    ),
    Step(
        id="offline.review",
        role=Role.REVIEW,
        phase=REVIEW,
        title="Review window: the restored tasks",
        explain=(
            "The disabled leader's task store by status beside the backup's. Approving this "
            "step says: these are the tasks to keep."
        ),
        targets=Targets.BOT,
        risk=Risk.MUTATING,
        commands=(),
        check="the restored tasks match the backup's",
        added=True,
        run=review,
        preview=review_preview,
        preview_fact="offline_review",
        condition=review_was_started,
    ),
    Step(
        id="offline.review_stop",
        phase=REVIEW,
        title="Review window: stop the schedulers again",
        explain="Stop every scheduler the review started.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_stop}",),
        check="service inactive on every host",
        skippable=False,
        added=True,
        reads=(IS_ACTIVE,),
        run=review_stop,
        verify=check_stopped,
        condition=review_was_started,
    ),
    _as(
        "cleanup.revert",
        "offline.review_revert",
        phase=REVIEW,
        title="Review window: put every file back",
        explain=(
            "Put back every environment file (and clusters.json) exactly as preflight read "
            "them, byte for byte, so the schedulers start with their normal flags."
        ),
        added=True,
        needs_real_log=False,
        condition=review_was_disabled,
    ),
    Step(
        id="offline.start_rehydrated",
        phase=BRING_BACK,
        title="Start the rehydrated scheduler, alone",
        explain=(
            "Start the rehydrated scheduler with its normal flags, every other one still "
            "stopped, and see it come up on /vars."
        ),
        targets=Targets.REHYDRATED,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="it answers /vars (STORAGE_PREPARED until a quorum is up, or leading)",
        skippable=False,
        needs_real_log=True,
        reads=(IS_ACTIVE, LOG_TAIL),
        run=start_rehydrated,
        verify=check_started,
        precondition=all_down,
    ),
    Step(
        id="offline.start_quorum",
        phase=BRING_BACK,
        title="Start blank schedulers up to the quorum, one at a time",
        explain=(
            "Start enough blank schedulers to reach -native_log_quorum_size with the "
            "rehydrated one, one at a time; each must answer /vars and its replica must "
            "report log/recovered = 1 (caught up from the rehydrated one) before the next."
        ),
        targets=Targets.QUORUM,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="each came up and log/recovered = 1",
        skippable=False,
        needs_real_log=True,
        reads=(LOG_TAIL,),
        run=start_blanks,
        verify=check_started,
        precondition=rehydrated_up,
        condition=has_blank_quorum,
    ),
    Step(
        id="offline.start_rest",
        phase=BRING_BACK,
        title="Start the remaining schedulers, one at a time",
        explain="Start every other scheduler, one at a time, each gated on log/recovered = 1.",
        targets=Targets.REST,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="each came up and log/recovered = 1",
        needs_real_log=True,
        reads=(LOG_TAIL,),
        run=start_blanks,
        verify=check_started,
        precondition=rehydrated_up,
        condition=has_rest,
    ),
    Step(
        id="offline.verify",
        role=Role.VERIFY,
        phase=END,
        title="Verify: one ACTIVE leader with the backup's tasks",
        explain=(
            "One leader ACTIVE, agreed by every leader source, whose task store holds the "
            "backup's active tasks; with mesos_master, no more kills than forecast."
        ),
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=("GET http://{address}:{http_port}/vars",),
        check="leader ACTIVE with the backup's task count",
        run=verify,
    ),
    _as("cleanup.transcript", "offline.transcript", phase=END),
)


async def restart(ctx: StepContext) -> Outcome:
    """How a revert brings the schedulers back with their normal flags (Procedure.restart):
    every one stopped first; when recovery-tool filled a replica (the others blank), that
    one starts first and each blank one follows, one at a time, once its replica caught up;
    otherwise (every log intact, or the old one put back) all start together."""
    stopped = await ctx.run(render_for(ctx, "{!service_stop}", ctx.hosts))
    failures = _failures(stopped)
    if failures:
        return Outcome(False, "stopping them failed: " + "; ".join(failures))
    down = await check_stopped(ctx)
    if not down.ok:
        return down
    first = ctx.facts.get("recovered_on")
    if not first:
        started = await ctx.run(render_for(ctx, "{!service_start}", ctx.hosts))
        failures = _failures(started)
        if failures:
            return Outcome(False, "; ".join(failures))
        return await came_up(ctx, ctx.hosts, UP_NORMAL)
    order = [first, *blanks(ctx.cluster, {**ctx.facts, "rehydrate": first})]
    for host in order:
        r = await ctx.run(render_for(ctx, "{!service_start}", [host]))
        if not r[host].ok:
            return Outcome(False, "; ".join(_failures(r)))
        up = await came_up(ctx, [host], UP_NORMAL)
        if not up.ok:
            return up
        if host != first:
            caught = await _recovered(ctx, host, _start_wait(ctx))
            if not caught.ok:
                return caught
    return Outcome(True, f"started in order, the rehydrated one first: {' → '.join(order)}")


OFFLINE = Procedure(
    name="offline",
    title="Offline restore (recovery-tool)",
    aurora_versions="0.21 and later (recovery-tool ships from 0.20)",
    steps=OFFLINE_STEPS,
    restart=restart,
)

"""prep.preflight: every gate before the first change.

Whatever would make a later step fail for a reason of configuration or environment is
found here, while nothing has changed: the environment file found, understood and its
edits computed in memory (and evaluated on the host the way the packaged startup script
evaluates it), clusters.json editable, the aurora client and `mesos-log` present, the log
and backup directories there, `sudo -n` allowed for every command the procedure runs
under sudo, the leader's sources usable, the backups listed with their true age. Each
problem is one line naming the host and what is wrong; a failed preflight ends the
restore and frees the cluster (runbook.engine).

Only reads happen here. Evaluating the environment file runs bash's `source` on it as the
SSH user, which is what the packaged startup script does at every start (as `aurora`):
its `$(...)` run, nothing is written.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from runbook import commands as cmd, envfile, snapshot
from runbook.actions import (
    LIST_BACKUPS,
    Outcome,
    StepContext,
    _b64,
    _failures,
    _read_all,
    _sha,
    aurora_client,
    backup_facts,
    backup_rows,
    direct_clusters_json,
    host_values,
    lifecycle,
    parse_backup_list,
    render_for,
    table_rows,
    unb64,
)
from runbook.backups import parse_names
from runbook.clusters import ENV_FILE_CANDIDATES
from runbook.errors import reason_of
from runbook.forecast import forecast
from runbook.hostlog import log_read_command, uses_journal

# Everything the procedure runs under sudo, rendered per host (without the `sudo`), so
# preflight can ask `sudo -n -l` for each. `{!…}` service commands are checked when the
# operator's template starts with `sudo`.
SUDO_USES = (
    "tee {env_file}",
    "tee {admin_clusters_json}",
    "du -sk {log_dir}",
    "tar -czf {archive} -C {log_dir} .",
    "tar -tzf {archive}",
    "sha256sum {archive}",
    "find {log_dir} -mindepth 1 -delete",
    "ls -A {log_dir}",
    "rm -f {archive}",
    "tar -xzf {archive} -C {log_dir}",
    "test -d {log_dir}",
)
# The backup directory's entries, NUL-separated: a name holding a newline stays one name
# (and is no backup).
LIST_DIR = "find {backup_dir} -mindepth 1 -maxdepth 1 -printf '%f\\0'"
SUDO_AS_SCHEDULER_USER = ("{!mesos_log} initialize --path={log_dir}",)


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        return command.split()[0] if command.split() else command
    return words[0] if words else command


async def _locate_env_files(ctx: StepContext) -> dict[str, str]:
    """host → the environment file's path, or "problem: …" when none is found."""
    out: dict[str, str] = {}
    todo: dict[str, str] = {}
    candidates = " ".join(shlex.quote(c) for c in ENV_FILE_CANDIDATES)
    for s in ctx.cluster.schedulers:
        configured = ctx.cluster.path(s, "env_file")
        if configured:
            out[s.host] = configured
        else:
            todo[s.host] = (
                f'for f in {candidates}; do if [ -f "$f" ]; then echo "$f"; exit 0; fi; done; exit 1'
            )
    if todo:
        found = await ctx.run(todo)
        for h, r in found.items():
            path = r.stdout.strip().splitlines()[0] if r.ok and r.stdout.strip() else ""
            try:
                out[h] = cmd.path(path)
            except cmd.InvalidValue:
                out[h] = f"problem: no environment file at {' or '.join(ENV_FILE_CANDIDATES)}"
    return out


def _edited_env(text: str) -> tuple[str | None, bool, list[str]]:
    """(the file as prep.auth and prep.disable will leave it, auth flag present, problems)."""
    try:
        envfile.flavour(text)
    except envfile.EnvFileError as exc:
        return None, False, [str(exc)]
    problems = envfile.check_editable(text)
    if problems:
        return None, False, problems
    try:
        auth = envfile.has_auth_flag(text)
        edited = envfile.disable(envfile.drop_auth(text) if auth else text)
    except envfile.EnvFileError as exc:
        return None, False, [str(exc)]
    left = envfile.check_disabled(edited)
    return (edited, auth, []) if not left else (None, auth, left)


async def _evaluate_argv(
    ctx: StepContext, files: Mapping[str, tuple[str, str, bytes, bool]]
) -> dict[str, tuple[list[str], list[str]]]:
    """On each host, the scheduler's argv before and after the edit, as the packaged
    startup script would compute it; host → (problems, argv before). No problems: only
    the intended flags differ, each once."""
    before_cmd, after_cmd, stdin = {}, {}, {}
    for h, (path, flavour, edited, _auth) in files.items():
        script = envfile.argv_script(flavour)  # type: ignore[arg-type]
        before_cmd[h] = f"bash -c {shlex.quote(script)} _ {shlex.quote(path)}"
        after_cmd[h] = f"bash -c {shlex.quote(script)} _ /dev/stdin"
        stdin[h] = edited
    before, after = await asyncio.gather(
        ctx.run(before_cmd, record=False), ctx.run(after_cmd, stdin=stdin, record=False)
    )
    out: dict[str, tuple[list[str], list[str]]] = {}
    for h, (_path, _flavour, _edited, auth) in files.items():
        b, a = before[h], after[h]
        if not b.ok or not a.ok:
            why = "; ".join(_failures({h: b if not b.ok else a}))
            out[h] = (
                [f"cannot evaluate the environment file as the startup script does: {why}"],
                [],
            )
            continue
        wanted: dict[str, str | None] = dict(envfile.DISABLED_ARGV)
        if auth:
            wanted.update(envfile.NO_AUTH_ARGV)
        argv = envfile.parse_argv(b.stdout.encode(errors="surrogateescape"))
        out[h] = (
            envfile.argv_changes(
                argv, envfile.parse_argv(a.stdout.encode(errors="surrogateescape")), wanted
            ),
            argv,
        )
    return out


def quorum_problems(argvs: Mapping[str, list[str]], schedulers: int) -> list[str]:
    """`-native_log_quorum_size` must be the same on every scheduler and a majority of
    them: a wrong one "will cause data corruption" (Aurora's configuration docs,
    `docs/reference/scheduler-configuration.md`; the replicated log needs that many
    replicas to write, apache/mesos `src/log/`). Unset, it is 1 (the flag's default)."""
    sizes = {
        h: flag_value(argv, "-native_log_quorum_size") or "1" for h, argv in argvs.items() if argv
    }
    if not sizes:
        return []
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{h} {q}" for h, q in sorted(sizes.items()))
        return [
            f"-native_log_quorum_size differs between the schedulers ({shown}): make it the same everywhere first"
        ]
    value = next(iter(sizes.values()))
    majority = schedulers // 2 + 1
    if not value.isdigit() or not majority <= int(value) <= schedulers:
        return [
            f"-native_log_quorum_size is {value} on every scheduler, but {schedulers} schedulers "
            f"need a majority: {majority}" + (f" to {schedulers}" if schedulers > majority else "")
        ]
    return []


async def prove_backup(
    ctx: StepContext, backup: str, holders: list[str]
) -> tuple[dict[str, Any], str | None]:
    """Read the chosen backup from a host that holds it and decode it as Aurora's staging
    would (runbook.snapshot): a truncated, corrupt or unreadable backup stops the restore
    here, while nothing has changed. With `mesos_master`, forecast the running tasks the
    restore would kill (runbook.forecast). Returns (facts, why it cannot be used)."""
    host = holders[0]
    path = host_values(ctx.cluster, ctx.sched(host), ctx.facts)["backup_path"]
    try:
        data = await ctx.remote.read_file(host, path)
    except Exception as exc:
        return {}, f"{host}: cannot read the backup {path}: {reason_of(exc)}"
    try:
        info = snapshot.decode(data)
    except snapshot.SnapshotError as exc:
        return {}, f"{host}: {path} is not a backup the scheduler can stage: {exc}"
    if ctx.cluster.aurora_version:
        why = info.readable_by(ctx.cluster.aurora_version)
        if why is not None:
            return {}, f"{host}: {path}: {why}"
    facts: dict[str, Any] = {
        "backup_info": {
            "taken_at": info.taken_at,
            "framework_id": info.framework_id,
            "version": info.version,
            "counts_by_status": info.counts_by_status,
            "tasks": len(info.tasks),
            "sha256": _sha(data),
            "read_from": host,
        }
    }
    facts.update(await kill_forecast(ctx, info))
    return facts, None


FORECAST_CAP = 1 << 20  # the listing kept for the card's file and the transcript


async def kill_forecast(ctx: StepContext, info: snapshot.SnapshotInfo) -> dict[str, Any]:
    """What restoring this backup kills: running now, unknown to the backup."""
    if not ctx.cluster.mesos_master or ctx.mesos is None:
        return {
            "kills": {
                "known": False,
                "why": "no mesos_master in the cluster file: the kills are not forecast",
            }
        }
    try:
        running = await ctx.mesos(ctx.cluster.mesos_master, info.framework_id, 10.0)
    except Exception as exc:  # the port says why in one line
        return {"kills": {"known": False, "why": f"the Mesos master cannot be read: {exc}"}}
    f = forecast(info, running)
    return {
        "kills": {
            "known": True,
            "predicted": f.kill_count,
            "jobs": f.job_count,
            "new_jobs": ["/".join(k) for k in f.new_jobs][:200],
            "by_role": f.roles,
            "summary": f.summary(),
            "running": len(running),
            "ids": sorted({t for ids in f.killed.values() for t in ids})[:20000],
            # What ran at preflight, to see after the failover what was really killed.
            "running_ids": sorted(t.task_id for t in running)[:100000],
        },
        "kills_listing": f.listing()[:FORECAST_CAP],
    }


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `-name=v` or `-name v` in a scheduler's argv."""
    for i, word in enumerate(argv):
        if word.startswith(name + "="):
            return word[len(name) + 1 :]
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


async def _which(ctx: StepContext, per_host: Mapping[str, str]) -> dict[str, str | None]:
    """host → the path `command -v` finds for the command given, or None."""
    res = await ctx.run(
        {h: f"command -v {shlex.quote(name)}" for h, name in per_host.items()}, record=False
    )
    return {h: (r.stdout.strip() or None) if r.ok else None for h, r in res.items()}


async def _find_clients(ctx: StepContext) -> tuple[dict[str, str], list[str]]:
    """The aurora client on each host: the configured one, else `aurora-admin` (Debian)
    or `aurora_admin` (RPM), whichever is there."""
    problems: list[str] = []
    clients: dict[str, str] = {}
    if ctx.cluster.aurora_admin:
        name = _first_word(ctx.cluster.aurora_admin)
        found = await _which(ctx, {h: name for h in ctx.hosts})
        for h, path in found.items():
            if path is None:
                problems.append(
                    f"{h}: the aurora client {name!r} (aurora_admin in the cluster file) is not on PATH"
                )
        return clients, problems
    debian = await _which(ctx, {h: "aurora-admin" for h in ctx.hosts})
    rpm = await _which(ctx, {h: "aurora_admin" for h in ctx.hosts})
    for h in ctx.hosts:
        if debian[h]:
            clients[h] = "aurora-admin"
        elif rpm[h]:
            clients[h] = "aurora_admin"
        else:
            problems.append(
                f"{h}: no aurora client on PATH (neither aurora-admin, Debian's, nor "
                "aurora_admin, the RPM's); set aurora_admin in the cluster file"
            )
    return clients, problems


def _sudo_checks(
    ctx: StepContext, host: str, templates: tuple[str, ...], service: bool
) -> list[str]:
    """`sudo -n -l …` for every command the procedure will run on `host` under sudo."""
    from runbook.actions import verbatim

    values = host_values(ctx.cluster, ctx.sched(host), ctx.facts)
    words = verbatim(ctx.cluster, ctx.facts, host)
    checks = []
    for template in templates:
        try:
            checks.append("sudo -n -l " + cmd.render(template, values, words))
        except KeyError:
            continue  # a value this host lacks is reported by its own gate
    if not service:
        return checks
    for template in SUDO_AS_SCHEDULER_USER:
        with_user = "sudo -n -u {scheduler_user} -l " + template
        try:
            checks.append(cmd.render(with_user, values, words))
        except KeyError:
            continue
    for template in (ctx.cluster.service.stop, ctx.cluster.service.start):
        if template.startswith("sudo "):
            checks.append("sudo -n -l " + template.removeprefix("sudo ").strip())
    if uses_journal(ctx.cluster, ctx.sched(host)):
        checks.append(
            "sudo -n -l "
            + log_read_command(ctx.cluster, ctx.sched(host), 1).removeprefix("sudo -n ")
        )
    return checks


async def _check_sudo(
    ctx: StepContext, templates: tuple[str, ...], service: bool = True
) -> list[str]:
    """One round trip per host: each `sudo -n -l CMD` that fails prints its number."""
    per_host = {h: _sudo_checks(ctx, h, templates, service) for h in ctx.hosts}
    scripts = {
        h: "; ".join(f"{c} > /dev/null 2>&1 || echo {i}" for i, c in enumerate(checks)) + "; true"
        for h, checks in per_host.items()
        if checks
    }
    if not scripts:
        return []
    res = await ctx.run(scripts, record=False)
    problems: list[str] = []
    for h, r in res.items():
        if not r.ok:
            problems.append(f"{h}: cannot ask sudo what it allows: {'; '.join(_failures({h: r}))}")
            continue
        refused = [
            per_host[h][int(n)].removeprefix("sudo -n ").replace("-l ", "", 1)
            for n in r.stdout.split()
            if n.isdigit() and int(n) < len(per_host[h])
        ]
        if refused:
            problems.append(
                f"{h}: sudo -n (no password prompt) refuses " + ", ".join(f"`{c}`" for c in refused)
            )
    return problems


async def _check_dirs(ctx: StepContext) -> list[str]:
    log = await ctx.run(render_for(ctx, "sudo -n test -d {log_dir}"), record=False)
    backups = await ctx.run(render_for(ctx, "test -d {backup_dir}"), record=False)
    problems = []
    for h in ctx.hosts:
        values = host_values(ctx.cluster, ctx.sched(h), ctx.facts)
        if not log[h].ok:
            problems.append(
                f"{h}: the log directory {values['log_dir']} is not there (or not readable with sudo)"
            )
        if not backups[h].ok:
            problems.append(f"{h}: the backup directory {values['backup_dir']} is not there")
    return problems


async def _zones(ctx: StepContext) -> dict[str, dict[str, str]]:
    """host → {"offset": "+0200", "zone": "CEST"}: the zone the host's clock is in."""
    res = await ctx.run({h: "date +%z%n%Z" for h in ctx.hosts}, record=False)
    out = {}
    for h, r in res.items():
        lines = r.stdout.split()
        if r.ok and len(lines) >= 2:
            out[h] = {"offset": lines[0], "zone": lines[1]}
    return out


def _offset(text: str) -> timezone | None:
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    sign = 1 if text[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


async def preflight(ctx: StepContext) -> Outcome:
    problems: list[str] = []
    # 1. The environment file: where, what, and its edits computed in memory.
    located = await _locate_env_files(ctx)
    problems += [
        f"{h}: {v.removeprefix('problem: ')}"
        for h, v in located.items()
        if v.startswith("problem: ")
    ]
    if problems:
        return Outcome(False, _failed(problems))
    paths: dict[str, dict[str, str]] = {h: {"env_file": p} for h, p in located.items()}
    ctx.facts.update(paths=paths)
    await ctx.learn(paths=paths)
    envs = await _read_all(ctx, "env_file")
    jsons = await _read_all(ctx, "admin_clusters_json")
    problems += [f"{h}: {v}" for d in (envs, jsons) for h, v in d.items() if isinstance(v, str)]
    if problems:
        return Outcome(False, _failed(problems))
    originals: dict[str, Any] = {}
    auth: list[str] = []
    evaluate: dict[str, tuple[str, str, bytes, bool]] = {}
    for h in ctx.hosts:
        env, cj = envs[h], jsons[h]
        assert isinstance(env, bytes) and isinstance(cj, bytes)
        originals[h] = {
            "env_file": {"b64": _b64(env), "sha256": _sha(env)},
            "admin_clusters_json": {"b64": _b64(cj), "sha256": _sha(cj)},
        }
        # The revert writes these bytes back: they must come back as they were read.
        assert _sha(unb64(originals[h]["env_file"]["b64"])) == _sha(env)
        path = located[h]
        try:
            text = env.decode()
        except UnicodeDecodeError:
            problems.append(f"{h}: {path} is not UTF-8 text")
            continue
        edited, has_auth, why = _edited_env(text)
        if edited is None:
            problems += [f"{h}: {path}: {w}" for w in why]
            continue
        settings = envfile.settings(text)
        flavour = envfile.flavour(text)
        paths[h].update(
            flavour=flavour,
            log_dir=settings.get("log_dir", ""),
            backup_dir=settings.get("backup_dir", ""),
            quorum=settings.get("quorum", ""),
        )
        if has_auth:
            auth.append(h)
        evaluate[h] = (path, flavour, edited.encode(), has_auth)
        try:
            direct_clusters_json(cj, ctx.cluster, ctx.sched(h))
        except ValueError as exc:
            problems.append(
                f"{h}: {host_values(ctx.cluster, ctx.sched(h), {})['admin_clusters_json']}: {exc}"
            )
        values = host_values(ctx.cluster, ctx.sched(h), {"paths": paths})
        for need in ("log_dir", "backup_dir"):
            if need not in values:
                field = "native_log_file_path" if need == "log_dir" else "backup_dir"
                problems.append(
                    f"{h}: {path} does not say where the {'replicated log' if need == 'log_dir' else 'backups'} "
                    f"live; set {field} in the cluster file"
                )
    if problems:
        return Outcome(False, _failed(problems))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ctx.facts.update(paths=paths, archive_stamp=stamp)
    await ctx.learn(originals=originals, paths=paths, auth_hosts=auth, archive_stamp=stamp)
    evaluated = await _evaluate_argv(ctx, evaluate)
    # The argv before: what the disable and revert checks compare with (check_argv).
    await ctx.learn(argv={h: argv for h, (_found, argv) in evaluated.items() if argv})
    problems += quorum_problems(
        {h: argv for h, (_found, argv) in evaluated.items()}, len(ctx.hosts)
    )
    for h, (found, argv) in evaluated.items():
        problems += [f"{h}: {located[h]}: {p}" for p in found]
        # Jetty bound to one address (-ip): aurora_admin must reach it there.
        listen = flag_value(argv, "-ip")
        if listen and listen not in ("0.0.0.0", "::"):
            try:
                paths[h]["listen"] = cmd.host(listen)
            except cmd.InvalidValue:
                problems.append(f"{h}: -ip {listen!r} is not an address aurora_admin can use")
    await ctx.learn(paths=paths)

    # 2. The tools, the directories, sudo.
    clients, missing = await _find_clients(ctx)
    problems += missing
    ctx.facts.update(clients=clients)
    await ctx.learn(clients=clients)
    mesos_log = _first_word(ctx.cluster.mesos_log)
    for h, where in (await _which(ctx, {h: mesos_log for h in ctx.hosts})).items():
        if where is None:
            problems.append(f"{h}: {mesos_log!r} (mesos_log in the cluster file) is not on PATH")
    problems += await _check_sudo(ctx, SUDO_USES)
    problems += await _check_dirs(ctx)
    if problems:
        return Outcome(False, _failed(problems))

    # 3. The backups, their true age, and the backup chosen.
    listing = await ctx.run(render_for(ctx, LIST_DIR))
    failures = _failures(listing)
    if failures:
        return Outcome(False, _failed(["cannot list the backups: " + "; ".join(failures)]))
    zones = await _zones(ctx)
    holders: dict[str, list[str]] = {}
    ignored: set[str] = set()
    for h, r in listing.items():
        offset = _offset(zones.get(h, {}).get("offset", ""))
        names, others = parse_names(r.stdout.split("\0"), offset)
        for name in names:
            holders.setdefault(name, []).append(h)
        ignored |= set(others)
    states = {h: lifecycle(v) for h, v in (await ctx.vars()).items()}
    leaders = [h for h, s in states.items() if s in ("ACTIVE", "LEADER_AWAITING_REGISTRATION")]
    leader = leaders[0] if len(leaders) == 1 else None
    # Where a scheduler runs, aurora_admin lists the backup_dir of the one it reaches.
    admin_note = ""
    asked = leader or next((h for h, s in states.items() if s != "DOWN"), None)
    if asked is not None:
        listed_by = await ctx.run(render_for(ctx, LIST_BACKUPS, [asked]))
        if listed_by[asked].ok:
            listed = parse_backup_list(listed_by[asked].stdout + "\n" + listed_by[asked].stderr)
            for name in listed:
                if asked not in holders.setdefault(name, []):
                    holders[name].append(asked)
            admin_note = (
                f"; {aurora_client(ctx.cluster, ctx.facts, asked)} on {asked} lists {len(listed)}"
            )
        else:
            failed = "; ".join(_failures(listed_by))
            admin_note = f"; the aurora client on {asked} could not list them ({failed})"
    wanted = ctx.facts.get("requested_backup")
    if wanted and wanted not in holders:
        known = ", ".join(sorted(holders, reverse=True)[:5]) or "none"
        return Outcome(
            False, _failed([f"backup {wanted} is on no scheduler (newest there: {known})"])
        )
    backup = wanted or (max(holders) if holders else None)
    taken_at: float | None = None
    proven: dict[str, Any] = {}
    if backup:
        ctx.facts.update(backup=backup)
        proven, unusable = await prove_backup(ctx, backup, sorted(holders[backup]))
        if unusable is not None:
            await ctx.learn(
                backups={n: sorted(hs) for n, hs in sorted(holders.items(), reverse=True)}
            )
            return Outcome(False, _failed([unusable]))
        # The snapshot's own timestamp is the true creation time.
        taken_at = proven["backup_info"]["taken_at"]
    facts = {**backup_facts(backup, ctx.cluster, taken_at), **proven}
    ctx.facts.update(backup=backup)
    # 4. sudo for restore.place, now that the backup's path is known.
    problems += await _check_sudo(ctx, ("tee {backup_path}",), service=False)

    # 5. The leader's sources: each configured one must be readable.
    if ctx.sources is not None:
        usable = await ctx.sources(ctx.cluster, ctx.probe, ctx.remote)
        problems += [
            f"the leader source {src} cannot be used: {why}" for src, why in usable.items() if why
        ]
    table: dict[str, Any] = {}
    disagreements: list[str] = []
    if ctx.detect is not None:
        report = await ctx.detect(ctx.cluster, ctx.probe, ctx.remote, "ACTIVE")
        table, disagreements = dict(report.table), list(report.problems)
    await ctx.learn(
        backups={n: sorted(hs) for n, hs in sorted(holders.items(), reverse=True)},
        not_backups=sorted(ignored)[:50],
        zones=zones,
        **facts,
        preflight_states=states,
        preflight_leader=leader,
        preflight_table=table,
        preflight_problems=disagreements,
    )
    if problems:
        return Outcome(False, _failed(problems))
    age = facts.get("backup_age")
    when = _when(taken_at, zones.get(sorted(holders[backup])[0], {}) if backup else {})
    age_text = f"{age / 3600:.1f}h old{when}" if age is not None else "no backup found"
    return Outcome(
        True,
        f"{len(ctx.hosts)} hosts reached; {len(holders)} backups{admin_note}; "
        f"backup {backup or '-'} ({age_text}); "
        f"leader now: {leader or 'none or several'}"
        + ("\nbackups, newest first:\n" + backup_rows(holders) if holders else "")
        + (f"\nnot backups (ignored): {', '.join(sorted(ignored)[:5])}" if ignored else "")
        + _proven_lines(facts)
        + ("\nthe leader, by source:\n" + table_rows(table) if table else "")
        + ("\n(for information: " + "; ".join(disagreements) + ")" if disagreements else ""),
    )


def _when(taken_at: float | None, zone: Mapping[str, str]) -> str:
    if taken_at is None:
        return ""
    utc = datetime.fromtimestamp(taken_at, UTC)
    text = f", written {utc:%Y-%m-%d %H:%M} UTC"
    offset = _offset(zone.get("offset", ""))
    if offset is not None and offset.utcoffset(None) != timedelta(0):
        text += f" ({utc.astimezone(offset):%H:%M} {zone.get('zone', '')} on the scheduler)"
    return text


def _proven_lines(facts: Mapping[str, Any]) -> str:
    info = facts.get("backup_info")
    if not info:
        return ""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(info["counts_by_status"].items()))
    lines = [
        f"\nthe backup decodes: {info['tasks']} tasks ({counts}); framework {info['framework_id'] or '?'}, "
        f"written by scheduler {info['version'] or '?'}"
    ]
    kills = facts.get("kills") or {}
    lines.append(
        f"\nkill forecast: {kills['summary']}"
        if kills.get("known")
        else f"\nkill forecast unknown: {kills.get('why')}"
    )
    return "".join(lines)


def _failed(problems: list[str]) -> str:
    head = "preflight found what would make the restore fail; nothing was changed:"
    return head + "\n" + "\n".join(f"- {p}" for p in problems)

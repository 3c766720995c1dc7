"""Which restore procedure a cluster gets: online or offline, by the Aurora version.

The cluster file's `procedure` is "online", "offline" or "auto" (the default). With
"auto" the version decides:

- Aurora 0.13 to 0.20: **online** (`aurora_admin scheduler_stage_recovery` / commit:
  `docs/operations/backup-restore.md` up to rel/0.20.0);
- Aurora 0.21 and later: **offline** (`recovery-tool`, documented from rel/0.21.0 on;
  the tool itself arrived in 0.20: `src/main/java/org/apache/aurora/scheduler/storage/
  durability/RecoveryTool.java`, apache/aurora).

The version comes from what the schedulers say on `/vars`: Aurora exports every build
property as `build.<name>` (`commons/src/main/java/org/apache/aurora/common/stats/
TimeSeriesRepositoryImpl.java`, `Stats.normalizeName("build." + name)`, which keeps
letters, digits and `_/.-`: `Stats.java`), and the build writes
`version=$(cat .auroraversion)` into build.properties
(`build-support/generate-build-properties`): `build.version 0.22.0`. Every scheduler
that reports a version must report the same one, and so must the cluster file's
`aurora_version` when it is set; otherwise this refuses to guess. When no scheduler
answers (they are often down in an incident), the cluster file's `aurora_version`
decides, then the version the chosen backup was written by (runbook.snapshot), when
preflight has decoded it; with none of them, the online procedure (its API exists in
every release), saying so.

A configured procedure is taken as it is, except "offline" on a version that has no
`recovery-tool` (before 0.20), which is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from runbook.clusters import Cluster
from runbook.ports import VarsProbe
from runbook.snapshot import parse_version

# The /vars key of the scheduler's build version.
VERSION_VAR = "build.version"
ONLINE_FROM = (0, 13, 0)
OFFLINE_FROM = (0, 21, 0)
# The first release that ships recovery-tool.
TOOL_FROM = (0, 20, 0)


class CannotChoose(ValueError):
    """No procedure can be chosen; the message is one line saying why and what to set."""


def versions_on_vars(answers: Mapping[str, Mapping[str, str] | str]) -> dict[str, str]:
    """host → the build version its /vars reports; hosts that do not answer, or answer
    without `build.version`, are left out (they cannot disagree)."""
    out = {}
    for host, v in answers.items():
        if isinstance(v, Mapping) and str(v.get(VERSION_VAR, "")).strip():
            out[host] = str(v[VERSION_VAR]).strip()
    return out


def procedure_for(version: str) -> str:
    """ "online" for Aurora 0.13 to 0.20, "offline" from 0.21; CannotChoose otherwise."""
    parsed = parse_version(version)
    if parsed is None:
        raise CannotChoose(f"{version!r} is not an Aurora version (like 0.22.0)")
    if parsed < ONLINE_FROM:
        raise CannotChoose(f"Aurora {version} is older than 0.13: no procedure here restores it")
    return "offline" if parsed >= OFFLINE_FROM else "online"


def _shown(versions: Mapping[str, str]) -> str:
    return ", ".join(f"{h} {v}" for h, v in sorted(versions.items()))


def _same(a: str, b: str) -> bool:
    return parse_version(a) == parse_version(b) and parse_version(a) is not None


def schedulers_version(
    on_vars: Mapping[str, str], configured: str | None
) -> tuple[str | None, str]:
    """The one version the schedulers run, and where it was read; CannotChoose when
    they (or they and the cluster file's `aurora_version`) disagree."""
    distinct = {parse_version(v) or v for v in on_vars.values()}
    if len(distinct) > 1:
        raise CannotChoose(
            f"the schedulers report different versions on /vars ({_shown(on_vars)}): "
            "set procedure in the cluster file"
        )
    if on_vars:
        version = sorted(on_vars.values())[0]
        if configured is not None and not _same(version, configured):
            raise CannotChoose(
                f"the schedulers report {version} on /vars but the cluster file's "
                f"aurora_version is {configured}: correct one of them"
            )
        return version, f"{VERSION_VAR} on /vars ({_shown(on_vars)})"
    if configured is not None:
        return configured, f"aurora_version = {configured!r} in the cluster file"
    return None, "no scheduler reports its version on /vars"


def choose(
    configured: str,
    on_vars: Mapping[str, str],
    aurora_version: str | None = None,
    backup_version: str | None = None,
) -> tuple[str, str | None, str]:
    """(procedure, the Aurora version it is for or None, why), or CannotChoose.

    `configured` is the cluster file's `procedure`; `on_vars` is host → the version its
    /vars reports (versions_on_vars); `backup_version` the version the chosen backup was
    written by, when preflight decoded it.
    """
    version, source = schedulers_version(on_vars, aurora_version)
    if version is None and backup_version:
        version, source = backup_version, f"the backup was written by Aurora {backup_version}"
    if configured in ("online", "offline"):
        parsed = parse_version(version) if version else None
        if configured == "offline" and parsed is not None and parsed < TOOL_FROM:
            raise CannotChoose(
                f'procedure = "offline" needs recovery-tool (Aurora 0.20 and later), but '
                f'the schedulers run {version} ({source}): use "online"'
            )
        return configured, version, f'procedure = "{configured}" in the cluster file'
    if configured != "auto":
        raise CannotChoose(f"unknown procedure {configured!r}: online, offline or auto")
    if version is None:
        # Nothing to go by: the procedure every release supports (the online API was never
        # removed), as before there was a choice; the cards say why.
        return (
            "online",
            None,
            f"the Aurora version is not known ({source}, no aurora_version in the cluster "
            "file): the online procedure, whose API every release has; set procedure or "
            "aurora_version to choose",
        )
    name = procedure_for(version)
    span = "0.21 and later" if name == "offline" else "0.13 to 0.20"
    return name, version, f"Aurora {version} ({source}): the {name} procedure is for {span}"


async def choose_cluster(
    cluster: Cluster, probe: VarsProbe, timeout: float = 3.0, backup_version: str | None = None
) -> tuple[str, str | None, str]:
    """choose() for a cluster: its `procedure` and `aurora_version`, and the version each
    scheduler's /vars reports now (read with `probe`, all at once)."""
    endpoints = {s.host: (s.connect_address, cluster.http_port_of(s)) for s in cluster.schedulers}
    answers = await probe.vars(endpoints, timeout)
    return choose(
        cluster.procedure, versions_on_vars(answers), cluster.aurora_version, backup_version
    )


Chooser = Callable[[Cluster], Awaitable[tuple[str, str, str | None]]]


def chooser(make_probe: Callable[[], VarsProbe], timeout: float = 3.0) -> Chooser:
    """The engine's `choose` (runbook.engine): (procedure, why, version) for a new restore
    of a cluster, the /vars read with a probe of its own (closed after); a cluster that
    cannot be told is refused with CannotChoose's line (runbook.engine.Refused)."""

    async def choose_for(cluster: Cluster) -> tuple[str, str, str | None]:
        from runbook.engine import Refused

        probe = make_probe()
        try:
            name, version, why = await choose_cluster(cluster, probe, timeout)
        except CannotChoose as exc:
            raise Refused(f"{cluster.name}: {exc}") from None
        finally:
            close = getattr(probe, "close", None)
            if close is not None:
                await close()
        return name, why, version

    return choose_for

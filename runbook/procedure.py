"""The restore procedure as data: every step of docs/runbook.md, in order.

This is Aurora's online recovery procedure (Aurora 0.13 to 0.20, the "0.17" page):
stop, disable, re-initialise the replicated log, stage and commit the backup on the
leader, undo the preparation. The procedure is a value (`ONLINE`) and each step refers
to its own functions (runbook.actions), so that a second variant (the offline
`recovery-tool` procedure of Aurora 0.21+) can sit beside this one as another value in
`runbook.procedures.PROCEDURES`. This is the only module that names the online steps' ids.

A step's `commands` are templates. `{name}` is replaced by a value that was validated
and shell-quoted first (`runbook.commands.render`); `{!name}` is replaced verbatim and
is used only for command templates that come from the cluster file itself (the service
commands), which the operator wrote as shell.
"""

from __future__ import annotations

from runbook import actions as a
from runbook.actions import (
    ARCHIVE_MATCHES,
    ARCHIVE_SUM,
    ARGV_NOW,
    IS_ACTIVE,
    LOG_TAIL,
    PRINT_RECOVERY,
    WIPE_PREVIEW,
    WIPED,
)
from runbook.preflight import preflight
from runbook.step import Procedure, Risk, Role, Step, Targets

__all__ = ["ONLINE", "Procedure", "Risk", "Role", "Step", "Targets"]


PREPARATION = "Preparation"
RELOG = "Re-initialize the Mesos replicated log"
RESTORE = "Restore from the backup"
CLEANUP = "Cleanup"

AURORA_ADMIN = "{!aurora_admin} {verb} --bypass-leader-redirect {cluster}"


def _admin(verb: str, *extra: str) -> str:
    return " ".join([AURORA_ADMIN.replace("{verb}", verb), *extra])


_ONLINE_STEPS: tuple[Step, ...] = (
    Step(
        id="prep.preflight",
        run=preflight,
        table_fact="preflight_table",
        role=Role.PREFLIGHT,
        phase=PREPARATION,
        title="Preflight: reach every scheduler, keep the originals",
        explain=(
            "Reach every scheduler over SSH. Read and keep each host's environment file and "
            "aurora_admin clusters.json (content and sha256): the revert puts them back byte "
            "for byte. Show the current leader, the backups found with their age, and the "
            "backup chosen. A backup older than the maximum age means the scheduler will kill "
            "every task started after it."
        ),
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=(
            "cat {env_file}",
            "cat {admin_clusters_json}",
            "ls -1 {backup_dir}",
            "{!is_active}",
        ),
        check="every gate passed; originals stored",
        skippable=False,
        fail_ends_restore=True,
    ),
    Step(
        id="prep.ack_backup",
        run=a.nothing,
        condition=a.backup_too_old,
        role=Role.ACK_BACKUP,
        phase=PREPARATION,
        title="Acknowledge the age of the backup",
        explain=(
            "The backup is older than the cluster's maximum backup age (or none was found). "
            "Restoring it resets the cluster to that moment: every job or task created or "
            "rescheduled since will be killed. An approver must acknowledge this explicitly."
        ),
        targets=Targets.BOT,
        risk=Risk.MUTATING,
        commands=(),
        check="acknowledgement recorded",
        skippable=False,
        added=True,
    ),
    Step(
        id="prep.stop",
        run=a.stop,
        verify=a.check_stopped,
        phase=PREPARATION,
        title="Stop all schedulers",
        explain="Stop every scheduler instance, in parallel.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_stop}",),
        check="service inactive on every host",
        reads=(IS_ACTIVE,),
    ),
    Step(
        id="prep.block_traffic",
        run=a.block_traffic,
        precondition=a.block_configured,
        phase=PREPARATION,
        title="Block external traffic to the schedulers (optional)",
        explain=(
            "Optional: block outside traffic to the schedulers' HTTP port, except from the bot, "
            "so nobody changes state that the restore would erase. This version has no "
            "firewall command to run it with, so it can only be skipped (the plan suggests so)."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!block_traffic}",),
        check="rule present",
        suggest_skip=True,
    ),
    Step(
        id="prep.admin_access",
        run=a.admin_access,
        verify=a.check_files_as_planned,
        file_edits=a.edits_admin,
        phase=PREPARATION,
        title="Point aurora_admin at the local scheduler",
        explain=(
            "On every scheduler, give aurora_admin a clusters.json entry for the cluster with "
            "`scheduler_uri` = http://localhost:<http_port> and no `zk`: while the schedulers "
            "are disabled nothing is advertised in ZooKeeper, so a `zk` entry would fail. The "
            "original file is kept for the revert."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("sudo -n tee {admin_clusters_json} > /dev/null",),
        check="file re-read matches",
        reads=("cat -- {admin_clusters_json}",),
    ),
    Step(
        id="prep.auth",
        run=a.drop_auth,
        verify=a.check_files_as_planned,
        file_edits=a.edits_auth,
        condition=a.auth_flag_present,
        phase=PREPARATION,
        title="Remove -http_authentication_mechanism for the restore",
        explain=(
            "The scheduler flags hold `-http_authentication_mechanism`: aurora_admin on the "
            "host could not talk to the scheduler directly. Remove the flag from "
            "EXTRA_SCHEDULER_ARGS for the restore; the revert puts it back."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("sudo -n tee {env_file} > /dev/null",),
        check="flag absent",
        reads=("cat -- {env_file}",),
    ),
    Step(
        id="prep.disable",
        run=a.disable,
        verify=a.check_files_as_planned,
        file_edits=a.edits_disable,
        phase=PREPARATION,
        title="Put the schedulers in the partly disabled state",
        explain=(
            "In every environment file: MESOS_MASTER (behind -mesos_master_address) set to a "
            "ZooKeeper address that does not exist, so no scheduler registers with Mesos; "
            "-max_registration_delay=360mins so the leader does not kill itself for not "
            "registering; -reconciliation_initial_delay=365days so no scheduler reconciles "
            "(on an empty log it would kill every task). Values already there are replaced, "
            "never appended: a flag given twice aborts the scheduler's start."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("sudo -n tee {env_file} > /dev/null",),
        check="file re-read shows the three values, each once",
        reads=("cat -- {env_file}", ARGV_NOW),
    ),
    Step(
        id="prep.start",
        run=a.start_disabled,
        verify=a.check_came_up_disabled,
        phase=PREPARATION,
        title="Start all schedulers (disabled)",
        explain="Start every scheduler; they come up disabled and elect a leader.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="every scheduler answers /vars, disabled: STORAGE_PREPARED or the leader LEADER_AWAITING_REGISTRATION",
        reads=(LOG_TAIL,),
    ),
    Step(
        id="log.stop",
        run=a.stop,
        verify=a.check_stopped,
        phase=RELOG,
        title="Stop all schedulers",
        explain="Stop every scheduler before the replicated log is touched.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_stop}",),
        check="inactive everywhere",
        reads=(IS_ACTIVE,),
    ),
    Step(
        id="log.archive",
        run=a.archive,
        verify=a.check_archived,
        phase=RELOG,
        title="Archive the old replicated log",
        explain=(
            "Keep the old log for forensics: pack the native log directory into a dated "
            "tarball next to it, after checking there is room on the disk."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=(a.ARCHIVE,),
        check="the tarball lists every file of the log directory; its sha256 is kept for the way back",
        added=True,
        reads=(ARCHIVE_MATCHES, ARCHIVE_SUM),
    ),
    Step(
        id="log.wipe",
        run=a.wipe,
        verify=a.check_wiped,
        preview=a.wipe_preview,
        precondition=a.all_stopped,
        role=Role.WIPE,
        phase=RELOG,
        title="Delete the replicated log on every scheduler",
        explain=(
            "Delete every file under the native log directory on every scheduler. The card "
            "shows how many files and bytes go on each host."
        ),
        targets=Targets.ALL,
        risk=Risk.DESTRUCTIVE,
        commands=("sudo -n find {log_dir} -mindepth 1 -delete",),
        check="directory empty everywhere",
        empties_log=True,
        reads=(WIPED, IS_ACTIVE, WIPE_PREVIEW),
    ),
    Step(
        id="log.init",
        run=a.init_log,
        verify=a.check_initialized,
        phase=RELOG,
        title="Initialize the replicated log",
        explain=(
            "`mesos-log initialize` on every scheduler, as the scheduler's own user so that "
            "the new files belong to it (a replica left owned by root keeps the scheduler "
            "from starting). It refuses a replica that is not empty."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("sudo -n -u {scheduler_user} {!mesos_log} initialize --path={log_dir}",),
        check="exit 0 everywhere",
        reads=(WIPED,),
    ),
    Step(
        id="log.start",
        run=a.start_disabled,
        verify=a.check_came_up_disabled,
        phase=RELOG,
        title="Start all schedulers",
        explain="Start every scheduler on the fresh log; still disabled.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_start}",),
        check="every scheduler answers /vars, disabled: STORAGE_PREPARED or the leader LEADER_AWAITING_REGISTRATION",
        reads=(LOG_TAIL,),
    ),
    Step(
        id="restore.leader",
        run=a.find_leader,
        table_fact="leader_table",
        role=Role.LEADER,
        phase=RESTORE,
        title="Find the leader",
        explain=(
            "Find the leading scheduler from every source configured: "
            "`scheduler_lifecycle_LEADER_AWAITING_REGISTRATION` in each scheduler's /vars "
            "(1 on the leader, 0 elsewhere), ZooKeeper under the serverset path, and the "
            "scheduler logs. Exactly one leader, and no source disagreeing."
        ),
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=("GET http://{address}:{http_port}/vars",),
        check="one leader",
    ),
    Step(
        id="restore.place",
        run=a.place,
        verify=a.check_placed,
        extend_plan=a.plan_copy,
        phase=RESTORE,
        title="Put the backup in the leader's backup_dir",
        explain=(
            "Make sure the chosen backup file is in the leader's backup directory: copy it "
            "from a host that has it, then compare size and sha256."
        ),
        targets=Targets.LEADER,
        risk=Risk.MUTATING,
        commands=(
            "sudo -n tee {backup_path} > /dev/null",
            "sha256sum {backup_path} && stat -c %s {backup_path}",
        ),
        check="leader has it, sha256 equal",
        reads=("test -f {backup_path}", "sha256sum {backup_path}", "cat -- {backup_path}"),
    ),
    Step(
        id="restore.stage",
        run=a.stage,
        verify=a.check_staged,
        phase=RESTORE,
        title="Stage the backup on the leader",
        explain="Load the backup into the leader's memory as a staged recovery.",
        targets=Targets.LEADER,
        risk=Risk.MUTATING,
        commands=(_admin("scheduler_stage_recovery", "{backup}"),),
        check="exit 0",
        reads=(PRINT_RECOVERY,),
    ),
    Step(
        id="restore.review",
        run=a.review,
        preview=a.review_preview,
        preview_fact="review",
        role=Role.REVIEW,
        phase=RESTORE,
        title="Review the staged tasks",
        explain=(
            "The staged recovery's tasks, printed by the leader: counts by role, job and "
            "status, and the full listing. Approving this step says: the listing is right."
        ),
        targets=Targets.LEADER,
        risk=Risk.MUTATING,
        commands=(_admin("scheduler_print_recovery_tasks"),),
        check="listing posted",
    ),
    Step(
        id="restore.commit",
        run=a.commit,
        verify=a.check_committed,
        precondition=a.staged_on_same_leader,
        phase=RESTORE,
        title="Commit the recovery",
        explain=(
            "Check again that the leader has not changed since the backup was staged (a "
            "staged recovery lives only in the leader's memory), then commit: the backup is "
            "written into the replicated log and the scheduler shuts down to force a "
            "failover. The client may report a transport error although the commit worked: "
            "what the schedulers do next decides."
        ),
        targets=Targets.LEADER,
        risk=Risk.DESTRUCTIVE,
        commands=(_admin("scheduler_commit_recovery"),),
        check="the old leader restarted and the recovery is no longer staged",
        skippable=False,
        fills_log=True,
        # A new leader has no staged recovery: find it, place the backup there, stage again.
        rewind_to="restore.leader",
        rewind_label="Back to restore.leader",
        reads=(PRINT_RECOVERY,),
    ),
    Step(
        id="restore.failover",
        run=a.failover,
        table_fact="failover_table",
        role=Role.LEADER,
        phase=RESTORE,
        title="Wait for a leader after the failover",
        explain="Wait (bounded) for a leader to come back after the failover.",
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=("GET http://{address}:{http_port}/vars",),
        check="a leader again",
    ),
    Step(
        id="cleanup.revert",
        run=a.revert,
        verify=a.check_files_as_planned,
        file_edits=a.edits_revert,
        phase=CLEANUP,
        title="Undo the preparation",
        explain=(
            "Put back every environment file and clusters.json exactly as they were (byte "
            "for byte, compared by sha256), which also restores the auth flag and the Mesos "
            "master address; remove the traffic block."
        ),
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=(
            "sudo -n tee {env_file} > /dev/null",
            "sudo -n tee {admin_clusters_json} > /dev/null",
        ),
        check="sha256 equals the original on every host",
        skippable=False,
        needs_real_log=True,
        reads=("cat -- {env_file}", "cat -- {admin_clusters_json}", ARGV_NOW),
    ),
    Step(
        id="cleanup.restart",
        run=a.restart,
        verify=a.check_came_up,
        phase=CLEANUP,
        title="Restart the schedulers, followers first",
        explain="Restart the schedulers one by one, the followers first and the leader last.",
        targets=Targets.ALL,
        risk=Risk.MUTATING,
        commands=("{!service_stop} && {!service_start}",),
        check="each scheduler answers /vars again (the leader ACTIVE or on its way)",
        needs_real_log=True,
        reads=(LOG_TAIL,),
    ),
    Step(
        id="cleanup.verify",
        run=a.verify,
        role=Role.VERIFY,
        phase=CLEANUP,
        title="Verify: an ACTIVE leader with the reviewed tasks",
        explain=(
            "A leader is ACTIVE (`scheduler_lifecycle_ACTIVE 1`) and, where it can be read, "
            "the number of active tasks matches the reviewed listing."
        ),
        targets=Targets.ALL,
        risk=Risk.READ_ONLY,
        commands=("GET http://{address}:{http_port}/vars",),
        check="leader ACTIVE",
    ),
    Step(
        id="cleanup.transcript",
        run=a.nothing,
        role=Role.TRANSCRIPT,
        phase=CLEANUP,
        title="Post the transcript",
        explain="The transcript of the whole restore, built from its event log.",
        targets=Targets.BOT,
        risk=Risk.READ_ONLY,
        commands=(),
        check="file posted",
    ),
)


ONLINE = Procedure(
    name="online",
    title="Online restore (aurora_admin scheduler_stage_recovery / commit)",
    aurora_versions="0.13 to 0.20 (the online API exists in every later release too)",
    steps=_ONLINE_STEPS,
)

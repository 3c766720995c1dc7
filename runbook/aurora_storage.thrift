// The part of Aurora's backup format this project reads and writes: a backup file is the
// TBinaryProtocol encoding of `Snapshot` (apache/aurora
// src/main/java/org/apache/aurora/scheduler/storage/backup/StorageBackup.java writes it,
// backup/Recovery.java reads it back).
//
// Field ids and types are Aurora's, from apache/aurora
// api/src/main/thrift/org/apache/aurora/gen/api.thrift and storage.thrift at rel/0.17.0
// and HEAD (the ids below are the same in both). Only the fields needed here are declared:
// a reader skips every field it does not declare, so a real backup (with host attributes,
// cron jobs, quotas, job updates...) decodes to just these.

namespace py aurora_storage

// api.thrift, enum ScheduleStatus (PARTITIONED from 0.18.0).
enum ScheduleStatus {
  PENDING = 0,
  STARTING = 1,
  RUNNING = 2,
  FINISHED = 3,
  FAILED = 4,
  KILLED = 5,
  KILLING = 6,
  LOST = 7,
  ASSIGNED = 9,
  INIT = 11,
  RESTARTING = 12,
  PREEMPTING = 13,
  THROTTLED = 16,
  DRAINING = 17,
  PARTITIONED = 18,
}

// api.thrift, struct Identity.
struct Identity {
  2: string user
}

// api.thrift, struct JobKey.
struct JobKey {
  1: string role
  2: string environment
  3: string name
}

// api.thrift, union Resource (a union is encoded as a struct with one field set).
struct Resource {
  1: double numCpus
  2: i64 ramMb
  3: i64 diskMb
  4: string namedPort
  5: i64 numGpus
}

// api.thrift, struct ExecutorConfig.
struct ExecutorConfig {
  1: string name
  2: string data
}

// api.thrift, struct TaskConfig (only some of its fields).
struct TaskConfig {
  28: JobKey job
  17: Identity owner
  7: bool isService
  11: i32 priority
  13: i32 maxTaskFailures
  18: optional bool production
  30: optional string tier
  32: set<Resource> resources
  25: optional ExecutorConfig executorConfig
}

// api.thrift, struct TaskEvent.
struct TaskEvent {
  1: i64 timestamp
  2: ScheduleStatus status
  3: optional string message
  4: optional string scheduler
}

// api.thrift, struct AssignedTask.
struct AssignedTask {
  1: string taskId
  2: string slaveId
  3: string slaveHost
  4: TaskConfig task
  5: map<string, i32> assignedPorts
  6: i32 instanceId
}

// api.thrift, struct ScheduledTask.
struct ScheduledTask {
  1: AssignedTask assignedTask
  2: ScheduleStatus status
  3: i32 failureCount
  4: list<TaskEvent> taskEvents
  5: string ancestorId
}

// storage.thrift, struct SchedulerMetadata: `details` holds the scheduler's build
// properties (BuildInfo: version, git.revision, git.tag, date...).
struct SchedulerMetadata {
  1: string frameworkId
  8: map<string, string> details
}

// storage.thrift, struct Snapshot. `timestamp` is when the snapshot was taken, in ms.
// 11 (dbScript) and 12 (experimentalTaskStore) exist in 0.17-0.19 only: a backup with a
// dbScript keeps part of its state as H2 SQL, which 0.20 and later cannot read.
struct Snapshot {
  1: i64 timestamp
  4: set<ScheduledTask> tasks
  6: SchedulerMetadata schedulerMetadata
  11: list<string> dbScript
  12: bool experimentalTaskStore
}

// Views for reading: the same field ids as above, fewer fields, so that decoding skips
// the rest (in C) and keeps only what a forecast needs.
struct TaskConfigView {
  28: JobKey job
}

struct AssignedTaskView {
  1: string taskId
  4: TaskConfigView task
  6: i32 instanceId
}

struct ScheduledTaskView {
  1: AssignedTaskView assignedTask
  2: ScheduleStatus status
}

struct SnapshotView {
  1: i64 timestamp
  4: set<ScheduledTaskView> tasks
  6: SchedulerMetadata schedulerMetadata
  11: list<string> dbScript
}

//! Protocol v1: one JSON object per line (docs/control-protocol.md). The client sends one
//! `Request` carrying `"v": 1`; the server answers with `Response` lines and closes the
//! connection after a final one (`done`, `ok`, `ps` or `error`).

use serde::{Deserialize, Serialize};

use crate::engine::{ServiceSnapshot, Snapshot};
use crate::logs::hub::RecordKind;
use crate::vocab::State;

pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// A request line: the version and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    pub(crate) fn new(op: Op) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            op,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// Tear the stack down; `grace_ms` overrides every service's grace.
    Down {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
    },
    /// The state of every service.
    Ps,
    /// Every snapshot of the stack as it changes (`pk attach`), until the stack ends.
    Watch,
    /// History (and, with `follow`, new lines) of the named services (empty: all).
    Logs {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<u64>,
        #[serde(default)]
        follow: bool,
    },
    Start {
        services: Vec<String>,
    },
    Stop {
        services: Vec<String>,
    },
    Restart {
        services: Vec<String>,
        /// Restart what depends on them too, after them.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dependents: bool,
    },
    /// Resolve once every named service meets `until` (or fail at once when it never will).
    Wait {
        services: Vec<String>,
        until: WaitFor,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WaitFor {
    /// Its process is running (or it already ran).
    Started,
    /// Its `ready` probe passed.
    Healthy,
    /// It exited (any code); success decides the exit code of `pk wait`.
    Completed,
    /// The condition `pk up -d` waits for: healthy with a probe, else running or completed.
    Up,
}

/// One row of `pk ps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PsRow {
    #[serde(flatten)]
    pub service: ServiceSnapshot,
    /// CPU use of the whole tree, percent of one core, over the last second.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the whole tree.
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Response {
    /// A service changed state.
    State {
        v: u32,
        service: String,
        state: State,
    },
    /// A line of output or a lifecycle line (`service` None: pk itself).
    Log {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        kind: RecordKind,
        ts_ms: u64,
        line: String,
    },
    /// The whole state of the stack (`watch`), sent on every change.
    Snapshot { v: u32, snapshot: Snapshot },
    /// History before the first `log` line was dropped because it was full.
    Dropped { v: u32, lines: u64 },
    /// A follower (`logs` with `follow`) fell behind: this many lines were not sent to it here
    /// (the history still has them).
    Shed { v: u32, lines: u64 },
    /// Final answer to `ps`.
    Ps {
        v: u32,
        name: String,
        config: String,
        pid: u32,
        containment: String,
        services: Vec<PsRow>,
    },
    /// Final: the stack has stopped (`down`).
    Done { v: u32, exit_code: i32 },
    /// Final: the request was carried out; `failed` lists services that did not get there.
    Ok {
        v: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<Failure>,
    },
    /// Final: the request was refused.
    Error { v: u32, message: String },
}

/// A service that did not reach what was asked, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub service: String,
    pub state: State,
    pub reason: String,
}

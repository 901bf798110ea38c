//! What a service is called by, what it waits for, and what state it is in.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::CommandSpec;

/// Index of a service in `Plan::services`.
pub(crate) type ServiceId = usize;

/// What a dependent waits for (`depends_on: { db: healthy }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Started,
    Healthy,
    Completed,
    CompletedSuccessfully,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
            Condition::CompletedSuccessfully => "completed_successfully",
        }
    }
}

/// `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

/// What one attempt of a `ready` or `alive` probe checks.
#[derive(Debug, Clone)]
pub enum ProbeCheck {
    Exec(CommandSpec),
    Http {
        host: String,
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// Accepted statuses; empty means any 2xx or 3xx.
        status: Vec<u16>,
        /// Extra request headers (name, value), sent in this order; checked at load to be a
        /// header token and a value without CR/LF.
        headers: Vec<(String, String)>,
    },
    /// `host:port` as written; resolved at probe time.
    Tcp {
        address: String,
    },
    Log(regex::Regex),
}

impl ProbeCheck {
    /// `tcp 127.0.0.1:5432`, `http http://127.0.0.1:8080/health`, `exec ./check.sh`, `log /ready/`.
    pub(crate) fn describe(&self) -> String {
        match self {
            ProbeCheck::Tcp { address } => format!("tcp {address}"),
            ProbeCheck::Http {
                host, port, path, ..
            } => format!("http http://{host}:{port}{path}"),
            ProbeCheck::Exec(cmd) => format!("exec {}", cmd.display()),
            ProbeCheck::Log(re) => format!("log /{}/", re.as_str()),
        }
    }
}

/// The state of a service as `pk ps`, the dashboard and the control protocol show it.
///
/// The engine's `Phase` carries more (exit details, timers); `State` is its public face. The
/// serde names are the protocol's state words: `label()` with `_` for a space (`timed_out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not part of this run (not selected).
    #[default]
    Inactive,
    /// Waiting on its dependencies.
    Pending,
    /// Spawned (or being spawned); its `ready` probe has not passed yet.
    Starting,
    /// Spawned, no `ready` probe.
    Running,
    /// Its `ready` probe passed.
    Healthy,
    /// Exited 0 for good.
    Completed,
    /// Exited non-zero (or by a signal) for good.
    Exited,
    /// Ended; a restart is due.
    Restarting,
    /// Its stop sequence is running.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// The restart limit was hit.
    Crashed,
    /// Could not spawn, `ready` deadline passed, or `alive` failed without restart.
    Failed,
    /// A required dependency can never meet its condition.
    Skipped,
    /// Stopped by pk because it ran longer than its `timeout:` (a failure).
    TimedOut,
}

impl State {
    /// Every state, in the order the dashboard counts them.
    pub(crate) const ALL: [State; 14] = [
        State::Running,
        State::Healthy,
        State::Starting,
        State::Pending,
        State::Restarting,
        State::Stopping,
        State::Completed,
        State::Exited,
        State::Stopped,
        State::Crashed,
        State::Failed,
        State::TimedOut,
        State::Skipped,
        State::Inactive,
    ];

    /// The state word: `pending`, `healthy`, …
    pub(crate) fn label(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Starting => "starting",
            State::Running => "running",
            State::Healthy => "healthy",
            State::Completed => "completed",
            State::Exited => "exited",
            State::Restarting => "restarting",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Crashed => "crashed",
            State::Failed => "failed",
            State::Skipped => "skipped",
            State::TimedOut => "timed out",
        }
    }

    /// A process tree exists (or is being created): `starting`, `running`, `healthy`.
    pub(crate) fn is_up(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Healthy)
    }

    /// Something is still to happen without a new request: up, stopping, pending or restarting.
    pub(crate) fn is_active(self) -> bool {
        self.is_up() || matches!(self, State::Pending | State::Stopping | State::Restarting)
    }

    /// Ended without success and nothing more will happen: `failed`, `crashed`, `exited`,
    /// `timed out`, `skipped`.
    pub(crate) fn is_failure(self) -> bool {
        matches!(
            self,
            State::Failed | State::Crashed | State::Exited | State::TimedOut | State::Skipped
        )
    }
}

/// What a condition is judged on: a service's state plus the two facts the state word does
/// not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub state: State,
    /// The current run's tree has been spawned (its pids are known).
    pub spawned: bool,
    /// Some run of the service exited successfully.
    pub completed_ok: bool,
}

/// Whether a condition holds now, may hold later, or never will without a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Met,
    Wait,
    Never,
}

/// Whether a service at `progress` meets `condition`: the one rule behind the engine's
/// dependency gate, `pk wait` / `pk start` / `pk restart` and what the dashboard shows as
/// "waiting for".
#[expect(clippy::match_same_arms, reason = "arms are ordered by precedence")]
pub(crate) fn meets(progress: Progress, condition: Condition) -> Verdict {
    use Condition as C;
    use State as S;
    match (progress.state, condition) {
        (S::Failed | S::Skipped | S::Stopped | S::Inactive, _) => Verdict::Never,
        (S::Crashed | S::Completed | S::Exited | S::TimedOut, C::Completed)
        | (S::Completed | S::Exited | S::TimedOut, C::Started) => Verdict::Met,
        (S::Crashed, _) => Verdict::Never,
        (_, C::CompletedSuccessfully) if progress.completed_ok => Verdict::Met,
        (S::Completed | S::Exited | S::TimedOut, C::CompletedSuccessfully | C::Healthy) => {
            Verdict::Never
        }
        (S::Starting, C::Started) if progress.spawned => Verdict::Met,
        (S::Running | S::Healthy, C::Started) | (S::Healthy, C::Healthy) => Verdict::Met,
        _ => Verdict::Wait,
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_labels() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.label().replace(' ', "_")));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
        }
    }

    fn at(state: State) -> Progress {
        Progress {
            state,
            spawned: state.is_up(),
            completed_ok: state == State::Completed,
        }
    }

    #[test]
    fn conditions() {
        use Condition as C;
        use Verdict::{Met, Never, Wait};
        let table = [
            (State::Pending, [Wait, Wait, Wait, Wait]),
            (State::Starting, [Met, Wait, Wait, Wait]),
            (State::Running, [Met, Wait, Wait, Wait]),
            (State::Healthy, [Met, Met, Wait, Wait]),
            (State::Completed, [Met, Never, Met, Met]),
            (State::Exited, [Met, Never, Met, Never]),
            (State::Restarting, [Wait, Wait, Wait, Wait]),
            (State::Stopping, [Wait, Wait, Wait, Wait]),
            (State::Crashed, [Never, Never, Met, Never]),
            (State::TimedOut, [Met, Never, Met, Never]),
            (State::Stopped, [Never; 4]),
            (State::Failed, [Never; 4]),
            (State::Skipped, [Never; 4]),
            (State::Inactive, [Never; 4]),
        ];
        for (state, want) in table {
            let conditions = [
                C::Started,
                C::Healthy,
                C::Completed,
                C::CompletedSuccessfully,
            ];
            for (c, w) in conditions.into_iter().zip(want) {
                assert_eq!(meets(at(state), c), w, "{state} {c:?}");
            }
        }
        // Starting counts as started only once the tree is spawned.
        let unspawned = Progress {
            spawned: false,
            ..at(State::Starting)
        };
        assert_eq!(meets(unspawned, C::Started), Wait);
        // A one-shot that once succeeded stays successful while it runs again.
        let again = Progress {
            completed_ok: true,
            ..at(State::Running)
        };
        assert_eq!(meets(again, C::CompletedSuccessfully), Met);
    }
}

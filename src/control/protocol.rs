//! Protocol v1: one JSON object per line. The client sends one `Request`; the server answers
//! with `Response` lines and closes the connection after a final one.

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Tear the stack down; `grace_ms` overrides every service's grace.
    Down {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Response {
    /// A service changed state.
    State {
        v: u32,
        service: String,
        state: String,
    },
    /// Final: every service has stopped.
    Done { v: u32, exit_code: i32 },
    /// Final: the request was refused.
    Error { v: u32, message: String },
}

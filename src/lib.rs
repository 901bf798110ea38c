//! pk: a declarative process orchestrator for local development stacks.
//!
//! Data flows `config` → `plan` → `engine` (which drives `supervisor`s over `process`
//! trees) → `ui`. See docs/architecture.md for the codemap and the invariants.

pub mod cli;
pub mod config;
pub mod control;
pub mod engine;
pub(crate) mod export;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod plan;
pub(crate) mod probe;
pub mod process;
pub(crate) mod supervisor;
pub mod ui;
pub mod vocab;
pub(crate) mod watch;

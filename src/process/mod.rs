//! TEMPORARY STUB of the process API (replaced by the process branch).
#![allow(dead_code, unused_variables, clippy::all, clippy::pedantic)]
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainmentKind {
    Cgroup,
    ProcessGroup,
}
pub struct Containment;
impl Containment {
    pub fn detect() -> Containment {
        Containment
    }
    pub fn process_groups(reason: &str) -> Containment {
        Containment
    }
    pub fn kind(&self) -> ContainmentKind {
        ContainmentKind::ProcessGroup
    }
    pub fn describe(&self) -> String {
        String::new()
    }
    pub fn spawn(&self, leaf: &str, spec: &SpawnSpec<'_>) -> std::io::Result<Spawned> {
        todo!()
    }
    pub fn kill_all(&self) {}
    pub fn cleanup(&self) {}
}
pub struct SpawnSpec<'a> {
    pub stages: &'a [Vec<String>],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
}
pub fn shell_argv(cmd: &str) -> Vec<String> {
    vec![]
}
pub struct Spawned {
    pub tree: ProcessTree,
    pub stdout: tokio::net::unix::pipe::Receiver,
    pub stderr: tokio::net::unix::pipe::Receiver,
}
pub struct ProcessTree;
pub struct StopOutcome {
    pub killed: bool,
    pub statuses: Vec<std::process::ExitStatus>,
}
impl ProcessTree {
    pub fn pids(&self) -> Vec<u32> {
        vec![]
    }
    pub async fn wait_stages(&mut self) -> Vec<std::process::ExitStatus> {
        todo!()
    }
    pub fn is_drained(&mut self) -> bool {
        true
    }
    pub async fn wait_drained(&mut self) {}
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        Ok(())
    }
    pub fn kill(&self) {}
    pub async fn stop(&mut self, signal: i32, grace: Duration) -> StopOutcome {
        todo!()
    }
}

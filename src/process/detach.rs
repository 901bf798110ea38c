//! Starting pk itself in the background (`pk up -d`): a new session, no terminal, output to a
//! log file. The one spawn outside a service tree, so it lives here with the others.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `exe args…` in a new session with stdin from /dev/null and stdout/stderr appended to
/// `log`; returns its pid. The child is not waited for: it outlives this process by design.
#[expect(
    clippy::disallowed_methods,
    reason = "process/ is the one place that spawns"
)]
pub(crate) fn spawn_detached(
    exe: &Path,
    args: &[String],
    envs: &[(&str, &str)],
    log: &Path,
) -> io::Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(child.id())
}

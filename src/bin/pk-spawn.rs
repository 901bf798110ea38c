//! The spawn shim: pk starts every service process through this tiny program, so that pk itself
//! can use the cheap `posix_spawn` (no `fork` of pk) while the child still, before running
//! anything of the service: asks for SIGKILL when pk dies, checks pk is still its parent, and
//! moves itself into its cgroup leaf. Then it execs the service's program.
//!
//! Usage (by pk only): `pk-spawn <cgroup.procs path or -> <pk pid> <program path> <argv0> [args…]`.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(procs), Some(parent), Some(program), Some(argv0)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        fail(
            "usage: pk-spawn <cgroup.procs|-> <pk pid> <program> <argv0> [args…] (pk's own helper)",
            2,
        );
    };
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        fail(
            &format!("pk-spawn: cannot set the parent-death signal: {e}"),
            126,
        );
    }
    let parent: Option<i32> = parent.to_str().and_then(|p| p.parse().ok());
    if rustix::process::getppid()
        .map(rustix::process::Pid::as_raw_nonzero)
        .map(i32::from)
        != parent
    {
        // pk died before this process could ask to die with it: do not run orphaned.
        fail("pk-spawn: pk exited while starting this process", 126);
    }
    if procs != "-" {
        let moved = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .and_then(|mut f| f.write_all(b"0"));
        if let Err(e) = moved {
            fail(
                &format!(
                    "pk-spawn: cannot enter cgroup {}: {e}",
                    procs.to_string_lossy()
                ),
                126,
            );
        }
    }
    let error = std::process::Command::new(&program)
        .arg0(&argv0)
        .args(args)
        .exec();
    fail(
        &format!("pk: cannot start `{}`: {error}", program.to_string_lossy()),
        127,
    );
}

fn fail(message: &str, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "{message}");
    std::process::exit(code);
}

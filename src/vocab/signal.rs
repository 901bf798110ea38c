//! Signals by number and name: one table, numbers from libc (they differ between platforms:
//! `USR1` is 10 on Linux, 30 on macOS and the BSDs).

/// A signal by number and canonical name (`TERM`, not `SIGTERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal {
    pub number: i32,
    pub name: &'static str,
}

impl StopSignal {
    pub const TERM: StopSignal = StopSignal {
        number: libc::SIGTERM,
        name: "TERM",
    };
    pub const KILL: StopSignal = StopSignal {
        number: libc::SIGKILL,
        name: "KILL",
    };
}

/// Every signal pk names: `(name, number, a service may be stopped or signalled with it)`. The
/// stoppable ones come first, in the order error hints list them.
const SIGNALS: &[(&str, i32, bool)] = &[
    ("TERM", libc::SIGTERM, true),
    ("INT", libc::SIGINT, true),
    ("HUP", libc::SIGHUP, true),
    ("QUIT", libc::SIGQUIT, true),
    ("KILL", libc::SIGKILL, true),
    ("USR1", libc::SIGUSR1, true),
    ("USR2", libc::SIGUSR2, true),
    ("ALRM", libc::SIGALRM, true),
    ("WINCH", libc::SIGWINCH, true),
    ("ILL", libc::SIGILL, false),
    ("ABRT", libc::SIGABRT, false),
    ("SEGV", libc::SIGSEGV, false),
    ("PIPE", libc::SIGPIPE, false),
];

/// The signals a service may be stopped (or, by a watch, signalled) with.
pub(crate) fn stop_signals() -> impl Iterator<Item = StopSignal> {
    SIGNALS
        .iter()
        .filter(|(_, _, stop)| *stop)
        .map(|&(name, number, _)| StopSignal { number, name })
}

/// `SIGTERM` for 15; `signal 42` for a number without a name here.
pub(super) fn signal_name(sig: i32) -> String {
    match SIGNALS.iter().find(|(_, n, _)| *n == sig) {
        Some((name, _, _)) => format!("SIG{name}"),
        None => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree_with_libc() {
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(1000), "signal 1000");
        let names: Vec<&str> = stop_signals().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "ALRM", "WINCH"
            ]
        );
        let numbers: std::collections::HashSet<i32> = SIGNALS.iter().map(|s| s.1).collect();
        assert_eq!(numbers.len(), SIGNALS.len(), "one name per number");
    }
}

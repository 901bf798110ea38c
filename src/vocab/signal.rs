//! Signals by number and name.

/// A signal by number and canonical name (`TERM`, not `SIGTERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal {
    pub number: i32,
    pub name: &'static str,
}

impl StopSignal {
    pub const TERM: StopSignal = StopSignal {
        number: 15,
        name: "TERM",
    };
    pub const KILL: StopSignal = StopSignal {
        number: 9,
        name: "KILL",
    };
}

/// `SIGTERM` for 15; `signal 42` for a number without a name here.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return format!("signal {sig}"),
    };
    format!("SIG{name}")
}

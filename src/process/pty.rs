//! Pseudo-terminals for `tty: true` services: pk opens the pair, the service gets the slave as
//! its controlling terminal and as stdin, stdout and stderr; pk keeps the master to read the
//! output and to set the window size.
//!
//! Invariants: pk never writes to the master (a service's input stays silent); pk's copies of
//! the slave are closed once the child has it, so the master reads EIO (the end) when the last
//! process holding the terminal is gone; output post-processing is off (`ONLCR`), so lines end
//! in `\n` as they would on a pipe.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{OutputModes, Winsize};

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

impl WinSize {
    /// What a service gets when pk has no terminal to follow: 120 columns, 24 rows.
    pub(crate) const DEFAULT: WinSize = WinSize {
        rows: 24,
        cols: 120,
    };

    /// The size of the terminal on `fd`, if it is one.
    pub(crate) fn of_terminal(fd: impl AsFd) -> Option<WinSize> {
        let ws = rustix::termios::tcgetwinsize(fd).ok()?;
        (ws.ws_col > 0 && ws.ws_row > 0).then_some(WinSize {
            rows: ws.ws_row,
            cols: ws.ws_col,
        })
    }

    fn winsize(self) -> Winsize {
        Winsize {
            ws_row: self.rows.max(1),
            ws_col: self.cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// pk's side of a service's terminal: sets its window size (the kernel sends the foreground
/// process group SIGWINCH when it changes).
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
}

impl Pty {
    pub(crate) fn resize(&self, size: WinSize) -> io::Result<()> {
        Ok(rustix::termios::tcsetwinsize(&self.master, size.winsize())?)
    }

    /// The window size the service sees now.
    #[cfg(test)]
    pub(crate) fn size(&self) -> io::Result<WinSize> {
        let ws = rustix::termios::tcgetwinsize(&self.master)?;
        Ok(WinSize {
            rows: ws.ws_row,
            cols: ws.ws_col,
        })
    }
}

/// A new terminal pair of `size`: the master for pk (non-blocking, close-on-exec) as the
/// [`Pty`] and a second descriptor of it to read from, and the slave for the child
/// (close-on-exec: the child gets it through dup2 onto 0, 1 and 2).
pub(crate) fn open(size: WinSize) -> io::Result<(Pty, OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut termios = rustix::termios::tcgetattr(&slave)?;
    termios.output_modes.remove(OutputModes::ONLCR);
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &termios)?;
    rustix::termios::tcsetwinsize(&master, size.winsize())?;
    let reader = rustix::io::fcntl_dupfd_cloexec(&master, 3)?;
    let flags = rustix::fs::fcntl_getfl(&reader)?;
    rustix::fs::fcntl_setfl(&reader, flags | OFlags::NONBLOCK)?;
    Ok((Pty { master }, reader, slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pair_has_the_size_asked_for_and_resizes() {
        let (pty, _reader, slave) = open(WinSize {
            rows: 30,
            cols: 100,
        })
        .unwrap();
        assert_eq!(
            WinSize::of_terminal(&slave),
            Some(WinSize {
                rows: 30,
                cols: 100
            })
        );
        pty.resize(WinSize {
            rows: 40,
            cols: 132,
        })
        .unwrap();
        assert_eq!(
            pty.size().unwrap(),
            WinSize {
                rows: 40,
                cols: 132
            }
        );
        assert_eq!(
            WinSize::of_terminal(&slave),
            Some(WinSize {
                rows: 40,
                cols: 132
            })
        );
        let termios = rustix::termios::tcgetattr(&slave).unwrap();
        assert!(!termios.output_modes.contains(OutputModes::ONLCR));
    }
}

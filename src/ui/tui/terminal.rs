//! Owning the terminal: raw mode, alternate screen, mouse capture, and pk's stderr captured
//! into its own log for as long as the dashboard shows.
//!
//! Invariants: `restore` is idempotent and callable from any thread, the panic hook and the
//! "exit now" path, so the terminal is given back on every exit; while the dashboard owns the
//! terminal, file descriptor 2 is a pipe read into pk's log, never the terminal.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use crossterm::cursor::{Hide, Show};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use crate::logs::{LogEvent, LogSender};

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The real stderr while fd 2 points at the capture pipe.
static SAVED_STDERR: Mutex<Option<OwnedFd>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

/// Takes the terminal over; on failure it is left as it was.
pub(super) fn enter() -> io::Result<()> {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    if let Err(e) = execute!(
        io::stdout(),
        EnterAlternateScreen,
        Clear(ClearType::All),
        EnableMouseCapture,
        Hide
    ) {
        restore();
        return Err(e);
    }
    Ok(())
}

/// Gives the terminal back: mouse capture off, main screen, cursor shown, raw mode off, and
/// stderr pointing at the terminal again. Does nothing if the dashboard does not own it.
pub(crate) fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    // Best effort on every step: a step that fails must not keep the others from running.
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, Show);
    let _ = out.flush();
    let _ = disable_raw_mode();
    let saved = SAVED_STDERR.lock().map(|mut s| s.take());
    if let Ok(Some(fd)) = saved {
        // If this fails, stderr stays on the pipe and messages go to the (ending) log.
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

/// Points fd 2 at a pipe whose lines become pk notices (`stderr: …`), so nothing written to
/// stderr (by pk or a library) tears the dashboard. Undone by `restore`.
pub(super) fn capture_stderr(logs: LogSender) -> io::Result<()> {
    let (read, write) = rustix::pipe::pipe()?;
    let saved = rustix::io::dup(io::stderr())?;
    rustix::stdio::dup2_stderr(&write)?;
    drop(write);
    if let Ok(mut slot) = SAVED_STDERR.lock() {
        *slot = Some(saved);
    }
    std::thread::Builder::new()
        .name("pk-stderr".into())
        .spawn(move || {
            let reader = BufReader::new(std::fs::File::from(read));
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let text = format!("stderr: {line}");
                if logs
                    .send(LogEvent::Notice {
                        service: None,
                        text,
                    })
                    .is_err()
                {
                    break;
                }
            }
        })?;
    Ok(())
}

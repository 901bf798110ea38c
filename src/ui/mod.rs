//! Renderers of what the engine publishes: the plain line printer and the dashboard.
//!
//! Invariant: the UI never changes service state; it turns input into intents only.

pub(crate) mod plain;
pub mod tui;

use std::thread::JoinHandle;

use crate::engine::EngineHandle;

/// The renderer `pk up` runs: the plain printer, or the dashboard (which needs the engine's
/// handle before it can start).
pub(crate) enum Renderer {
    /// Ends with the first error writing stdout, if any.
    Plain(JoinHandle<std::io::Result<()>>),
    Pending(tui::PendingTui),
    Dashboard(JoinHandle<()>),
}

impl Renderer {
    /// Gives the dashboard its engine and starts it; the plain printer runs already.
    #[must_use]
    pub(crate) fn attach(self, engine: EngineHandle) -> Renderer {
        match self {
            Renderer::Pending(p) => Renderer::Dashboard(p.start(engine)),
            other => other,
        }
    }

    /// Waits until the renderer has shown everything (after `LogEvent::End`); Err if output
    /// was lost (stdout could not be written, or the renderer panicked).
    pub(crate) fn join(self) -> std::io::Result<()> {
        let panicked = |_| Err(std::io::Error::other("the renderer panicked"));
        match self {
            Renderer::Plain(t) => t.join().unwrap_or_else(panicked),
            Renderer::Dashboard(t) => t.join().or_else(panicked),
            Renderer::Pending(_) => {
                tui::restore_terminal();
                Ok(())
            }
        }
    }
}

/// `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour output going to stdout (`auto`: a terminal and no `NO_COLOR`).
    pub(crate) fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                use std::io::IsTerminal;
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}

//! File watching → restart (or signal) intents for the services with a `watch:` block, active
//! with `pk up --watch`.
//!
//! Data flow: notify (inotify) → the `pk-watch` thread, which owns the watches and filters raw
//! events (`tree`, `filter`) → relevant `Change`s → the debouncer task (`debounce`) → one
//! `Intent::Restart` / `Intent::Signal` per burst into the engine's input channel.
//! Invariants: filtering happens before debouncing; the watcher never changes service state
//! itself; a service stopped on request (`pk stop`) or a stack being torn down is left alone.

pub(crate) mod debounce;
pub(crate) mod filter;
mod tree;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::{EngineHandle, Input, Intent};
use crate::logs::{LogEvent, LogSender};
use crate::plan::{Plan, WatchAction};
use crate::vocab::ServiceId;
use debounce::{Batch, Change, Debouncer};
use filter::ServiceFilter;
use tree::Tree;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    #[error(
        "cannot watch {dir}: the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}); \
         raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (add the setting to \
         /etc/sysctl.conf to keep it), or add large directories to `watch.ignore`"
    )]
    Limit { dir: PathBuf, limit: String },
    #[error("cannot start the file watcher: {source}{hint}")]
    Start {
        source: notify::Error,
        hint: &'static str,
    },
}

impl WatchError {
    fn limit(dir: &Path) -> WatchError {
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        WatchError::Limit {
            dir: dir.to_path_buf(),
            limit,
        }
    }

    fn start(source: notify::Error) -> WatchError {
        let too_many =
            matches!(&source.kind, notify::ErrorKind::Io(e) if e.raw_os_error() == Some(24));
        WatchError::Start {
            source,
            hint: if too_many {
                "; too many inotify instances: raise `sudo sysctl fs.inotify.max_user_instances=1024`"
            } else {
                ""
            },
        }
    }
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// A running watcher; dropping it stops watching.
pub(crate) struct WatchHandle {
    stop: std_mpsc::Sender<Msg>,
    debouncer: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        // The thread may have ended already (its output closed); then it is stopped anyway.
        let _ = self.stop.send(Msg::Stop);
        self.debouncer.abort();
    }
}

/// Starts watching for the `selected` services that have a `watch:` block. Announces what is
/// watched (and every watch path that does not exist) on `logs`. Must run inside a tokio
/// runtime. `Ok(None)`: nothing to watch.
pub(crate) fn start(
    plan: &Arc<Plan>,
    selected: &[bool],
    engine: EngineHandle,
    logs: &LogSender,
) -> Result<Option<WatchHandle>, WatchError> {
    let watching: Vec<ServiceId> = (0..plan.services.len())
        .filter(|&id| selected.get(id).copied().unwrap_or(false))
        .filter(|&id| plan.services[id].watch.is_some())
        .collect();
    let notice = |service: Option<ServiceId>, text: String| {
        // The printer lives as long as `pk up`.
        let _ = logs.send(LogEvent::Notice { service, text });
    };
    if watching.is_empty() {
        notice(
            None,
            "--watch: no service of this run has a `watch:` block".into(),
        );
        return Ok(None);
    }
    let log_files: Vec<PathBuf> = plan
        .services
        .iter()
        .filter_map(|s| s.log_file.clone())
        .collect();
    let filters = watching
        .iter()
        .filter_map(|&id| {
            let spec = plan.services[id].watch.as_ref()?;
            Some((id, ServiceFilter::new(spec, &plan.base_dir, &log_files)))
        })
        .collect();
    let (raw_tx, raw_rx) = std_mpsc::channel();
    let handler_tx = raw_tx.clone();
    let watcher = notify::recommended_watcher(move |event| {
        // The thread is gone only while pk exits.
        let _ = handler_tx.send(Msg::Event(event));
    })
    .map_err(WatchError::start)?;
    let mut tree = Tree::new(watcher, filters, &plan.base_dir);
    let missing = tree.resolve_roots()?;
    for (service, path) in missing {
        let shown = path.strip_prefix(&plan.base_dir).unwrap_or(&path);
        notice(
            Some(service),
            format!(
                "watch: {} does not exist; it is watched for in case it appears",
                shown.display()
            ),
        );
    }
    let watched_dirs = tree.watch_count();
    let names: Vec<&str> = watching
        .iter()
        .map(|&id| plan.services[id].name.as_str())
        .collect();
    notice(
        None,
        format!(
            "watching {} ({watched_dirs} {})",
            names.join(", "),
            if watched_dirs == 1 {
                "directory"
            } else {
                "directories"
            }
        ),
    );

    let (change_tx, change_rx) = mpsc::unbounded_channel();
    let thread_logs = logs.clone();
    std::thread::Builder::new()
        .name("pk-watch".into())
        .spawn(move || watch_thread(tree, &raw_rx, &change_tx, &thread_logs))
        .map_err(|e| WatchError::start(notify::Error::io(e)))?;

    let debounce: Vec<Duration> = plan
        .services
        .iter()
        .map(|s| s.watch.as_ref().map_or(Duration::ZERO, |w| w.debounce))
        .collect();
    let plan = Arc::clone(plan);
    let debouncer = tokio::spawn(debounce::run(
        Debouncer::new(debounce),
        change_rx,
        move |service, batch| fire(&plan, &engine, service, &batch),
    ));
    Ok(Some(WatchHandle {
        stop: raw_tx,
        debouncer,
    }))
}

/// Runs until stopped: raw events in, relevant changes out. A watch limit hit later (a new
/// directory) is reported once; watching goes on for what is watched.
fn watch_thread<W: notify::Watcher>(
    mut tree: Tree<W>,
    raw: &std_mpsc::Receiver<Msg>,
    changes: &mpsc::UnboundedSender<Change>,
    logs: &LogSender,
) {
    let mut limit_reported = false;
    let mut report = |e: &WatchError| {
        if !limit_reported {
            limit_reported = true;
            eprintln!("pk: error: {e}");
            // The printer lives as long as `pk up`.
            let _ = logs.send(LogEvent::Notice {
                service: None,
                text: format!("error: {e}"),
            });
        }
    };
    while let Ok(Msg::Event(event)) = raw.recv() {
        match event {
            Ok(event) => {
                if let Err(e) = tree.handle(&event, changes) {
                    report(&e);
                }
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                let dir = e.paths.first().cloned().unwrap_or_default();
                report(&WatchError::limit(&dir));
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        }
        if changes.is_closed() {
            return;
        }
    }
}

/// Acts on one debounced batch: sends the engine an automatic restart (or the signal). The
/// engine judges it — a service held stopped, on its way down, or a stack shutting down is
/// left alone — so no stale snapshot can turn a `pk stop` into a restart.
fn fire(plan: &Plan, engine: &EngineHandle, service: ServiceId, batch: &Batch) {
    let Some(watch) = &plan.services[service].watch else {
        return;
    };
    let cause = Some(batch.describe());
    let intent = match watch.action {
        WatchAction::Restart => Intent::Restart {
            service,
            cause,
            dependents: watch.restart_dependents,
        },
        WatchAction::Signal(signal) => Intent::Signal {
            service,
            signal,
            cause,
        },
    };
    // The engine stops listening only once everything has stopped.
    let _ = engine.inputs.send(Input::Intent(intent));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_limit_error_names_the_directory_and_how_to_raise_it() {
        let text = WatchError::limit(Path::new("/p/src")).to_string();
        assert!(text.starts_with("cannot watch /p/src: the inotify watch limit is reached (fs.inotify.max_user_watches = "), "{text}");
        assert!(
            text.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
            "{text}"
        );
    }
}

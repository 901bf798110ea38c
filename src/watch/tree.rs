//! The set of watched directories: one non-recursive inotify watch per directory that some
//! service wants, kept in step with the file system as directories come and go; raw events in,
//! relevant `Change`s out.
//!
//! Invariants: an ignored directory is never entered, so it costs no watch however big it is;
//! every watch path's nearest existing parent is watched too (so a path that is deleted,
//! re-created or created late is noticed), except for the config directory and its parents; `watched` mirrors the watches notify holds (notify
//! drops the watches below a deleted or moved-away directory, and so does `forget`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, CreateKind, RemoveKind};
use notify::{Event, EventKind, RecursiveMode};
use tokio::sync::mpsc::UnboundedSender;

use super::WatchError;
use super::debounce::Change;
use super::filter::{IgnoreFiles, ServiceFilter, is_ignore_file};
use crate::vocab::ServiceId;

pub(super) struct Tree<W> {
    watcher: W,
    watched: BTreeSet<PathBuf>,
    services: Vec<(ServiceId, ServiceFilter)>,
    files: IgnoreFiles,
    base_dir: PathBuf,
}

impl<W: notify::Watcher> Tree<W> {
    pub(super) fn new(
        watcher: W,
        services: Vec<(ServiceId, ServiceFilter)>,
        base_dir: &Path,
    ) -> Self {
        Tree {
            watcher,
            watched: BTreeSet::new(),
            services,
            files: IgnoreFiles::default(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// How many directories are watched (one inotify watch each).
    pub(super) fn watch_count(&self) -> usize {
        self.watched.len()
    }

    /// Watches every watch path's directory tree and nearest existing parent; returns the watch
    /// paths that do not exist (per service).
    pub(super) fn resolve_roots(&mut self) -> Result<Vec<(ServiceId, PathBuf)>, WatchError> {
        let roots: Vec<(ServiceId, PathBuf)> = self
            .services
            .iter()
            .flat_map(|(id, f)| f.roots.iter().map(|r| (*id, r.path.clone())))
            .collect();
        let mut missing = Vec::new();
        for (id, root) in roots {
            if root.is_dir() {
                if !self.watched.contains(&root) {
                    self.scan(&root)?;
                }
            } else if !root.exists() {
                missing.push((id, root.clone()));
            }
            // The config directory itself going away is not survivable anyway; its parent
            // (say /tmp or $HOME) would only bring a stream of unrelated events.
            if self.base_dir.starts_with(&root) {
                continue;
            }
            if let Some(anchor) = root.ancestors().skip(1).find(|a| a.is_dir()) {
                self.add(anchor)?;
            }
        }
        Ok(missing)
    }

    /// Watches `dir` and every directory below it that some service wants, never entering
    /// one that none wants.
    fn scan(&mut self, dir: &Path) -> Result<(), WatchError> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if !self.wants(&dir) {
                continue;
            }
            self.add(&dir)?;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // Symlinks are not followed: no loops, no watching outside the tree.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        Ok(())
    }

    fn wants(&mut self, dir: &Path) -> bool {
        let files = &mut self.files;
        self.services.iter().any(|(_, f)| f.wants_dir(dir, files))
    }

    fn add(&mut self, dir: &Path) -> Result<(), WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
                Ok(())
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                Err(WatchError::limit(dir))
            }
            Err(e) => {
                // Gone meanwhile, or unreadable: nothing to watch there.
                tracing::debug!(dir = %dir.display(), error = %e, "not watched");
                Ok(())
            }
        }
    }

    /// Forgets the watches at and below a path that is gone (notify dropped them already).
    fn forget(&mut self, path: &Path) {
        self.watched.retain(|w| !w.starts_with(path));
    }

    /// Handles one raw event: keeps the watches in step and sends each relevant change.
    pub(super) fn handle(
        &mut self,
        event: &Event,
        out: &UnboundedSender<Change>,
    ) -> Result<(), WatchError> {
        if event.need_rescan() {
            // The kernel queue overflowed: make sure nothing new went unwatched.
            for dir in self.watched.clone() {
                self.scan(&dir)?;
            }
            return Ok(());
        }
        let dir_hint = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
            // Opening or reading a file changes nothing.
            EventKind::Access(_) => return Ok(()),
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => true,
            _ => false,
        };
        for path in &event.paths {
            let is_dir = match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    if !self.watched.contains(path) && self.wants(path) {
                        self.scan(path)?;
                    }
                    true
                }
                Ok(_) => false,
                Err(_) => {
                    self.forget(path);
                    dir_hint
                }
            };
            if self
                .services
                .iter()
                .any(|(_, f)| f.roots.iter().any(|r| r.path.starts_with(path)))
            {
                // A watch path or one of its parents appeared or went: re-anchor.
                self.resolve_roots()?;
            }
            if is_ignore_file(path)
                && let Some(parent) = path.parent()
            {
                self.files.invalidate(parent);
            }
            for (service, filter) in &self.services {
                if filter.is_change(path, is_dir, &mut self.files) {
                    let shown = path.strip_prefix(&self.base_dir).unwrap_or(path);
                    // The debouncer is gone only while pk exits.
                    let _ = out.send(Change {
                        service: *service,
                        path: shown.to_path_buf(),
                    });
                }
            }
        }
        Ok(())
    }
}

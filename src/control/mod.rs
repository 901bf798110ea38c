//! The control socket: where a running `pk up` listens, the versioned JSON-lines protocol, the
//! server and the client.
//!
//! Invariants: the socket lives in a per-user directory of mode 0700, is named after the
//! canonical config path, and only peers with pk's own uid are served. Clients trust a socket
//! only in a directory that is theirs and private, served by a process of their own uid
//! (`SO_PEERCRED`). A socket file is replaced only when provably stale: nobody holds the
//! `flock` of the lock file beside it. No TCP port is opened.

mod client;
mod protocol;
mod server;

pub(crate) use client::{Call, QUICK_TIMEOUT, down, ps};
pub(crate) use protocol::{Failure, Op, PsRow, Response, WaitFor};
pub(crate) use server::{MetricsFn, Server, ServerContext};

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("pk is already running for {config} (socket {socket})")]
    Busy { config: PathBuf, socket: PathBuf },
    #[error("no running pk for {config} (no socket at {socket})")]
    NotRunning { config: PathBuf, socket: PathBuf },
    #[error("unsafe socket directory {dir}: {why}")]
    UnsafeDir { dir: PathBuf, why: String },
    #[error("control socket {socket} is served by uid {uid}, not by you; not talking to it")]
    ForeignPeer { socket: PathBuf, uid: u32 },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control protocol: {0}")]
    Protocol(String),
}

/// The per-user directory for sockets: `$XDG_RUNTIME_DIR/pk`, else `/tmp/pk-<uid>`.
pub(crate) fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("pk"),
        _ => PathBuf::from(format!("/tmp/pk-{}", rustix::process::getuid().as_raw())),
    }
}

/// The socket of the stack whose canonical config path is `config`.
pub fn socket_path(config: &Path) -> PathBuf {
    let stem = config
        .parent()
        .and_then(Path::file_name)
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_default();
    let stem: String = stem.chars().take(24).collect();
    socket_dir().join(format!(
        "{stem}-{:016x}.sock",
        fnv1a(config.as_os_str().as_encoded_bytes())
    ))
}

/// The run record of the stack whose canonical config path is `config` (next to its socket).
pub fn record_path(config: &Path) -> PathBuf {
    socket_path(config).with_extension("run.json")
}

/// The lock file beside the socket of `config`: a running pk holds its `flock`.
pub fn lock_path(config: &Path) -> PathBuf {
    socket_path(config).with_extension("lock")
}

/// Checks that an existing socket directory is a directory owned by us that nobody else may
/// use: what a client must know before it trusts a socket in it.
pub(crate) fn check_socket_dir(dir: &Path) -> Result<(), ControlError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| ControlError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        return Err(ControlError::UnsafeDir {
            dir: dir.to_path_buf(),
            why: format!(
                "not a directory owned by uid {uid} (owner: uid {}); another user may have created it",
                meta.uid()
            ),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ControlError::UnsafeDir {
            dir: dir.to_path_buf(),
            why: format!("mode {mode:03o} lets other users in (pk makes it 0700)"),
        });
    }
    Ok(())
}

/// Checks that the process at the other end of `stream` runs with our uid.
pub(crate) fn check_peer(stream: &tokio::net::UnixStream, path: &Path) -> Result<(), ControlError> {
    let cred = stream.peer_cred().map_err(|source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let uid = rustix::process::getuid().as_raw();
    if cred.uid() != uid {
        return Err(ControlError::ForeignPeer {
            socket: path.to_path_buf(),
            uid: cred.uid(),
        });
    }
    Ok(())
}

/// Creates the socket directory (0700) or checks that an existing one is ours and private.
pub fn ensure_socket_dir() -> Result<PathBuf, ControlError> {
    let dir = socket_dir();
    let io = |source| ControlError::Io {
        path: dir.clone(),
        source,
    };
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(io)?;
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        return Err(ControlError::UnsafeDir {
            dir,
            why: format!("not a directory owned by uid {uid}"),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(dir)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

//! The client side: `pk down`, `pk ps`, `pk logs` … talk to a running `pk up`.
//!
//! Invariant: a request is only sent to a socket in a private directory of ours, served by a
//! process with our uid; another local user cannot forge state or swallow a `pk down`.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

use super::protocol::{Op, Request, Response};
use super::{ControlError, check_peer, check_socket_dir, socket_path};

/// Connecting to a live socket takes microseconds; this bounds a wedged peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request that should answer at once (`ps`) gets this long.
pub(crate) const QUICK_TIMEOUT: Duration = Duration::from_secs(10);

/// An open request to a running stack; yields its response lines.
pub(crate) struct Call {
    read: BufReader<OwnedReadHalf>,
    line: String,
    path: std::path::PathBuf,
    // Kept open so the server does not see a half-closed connection.
    _write: tokio::net::unix::OwnedWriteHalf,
}

impl Call {
    /// Connects to the stack running `config` and sends `op`.
    pub(crate) async fn open(config: &Path, op: Op) -> Result<Call, ControlError> {
        let path = socket_path(config);
        let not_running = || ControlError::NotRunning {
            config: config.to_path_buf(),
            socket: path.clone(),
        };
        if let Some(dir) = path.parent() {
            match check_socket_dir(dir) {
                Err(ControlError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(not_running());
                }
                other => other?,
            }
        }
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(not_running());
            }
            Ok(Err(source)) => return Err(ControlError::Io { path, source }),
            Err(_) => return Err(ControlError::Protocol("timed out connecting".into())),
        };
        check_peer(&stream, &path)?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(&Request::new(op))
            .map_err(|e| ControlError::Protocol(e.to_string()))?;
        line.push(b'\n');
        write
            .write_all(&line)
            .await
            .map_err(|source| ControlError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Call {
            read: BufReader::new(read),
            line: String::new(),
            path,
            _write: write,
        })
    }

    /// The next response line; None once the server closed the connection. A last line cut
    /// short (pk exited in the middle of writing it) counts as closed, not as a bad response.
    pub(crate) async fn next(&mut self) -> Result<Option<Response>, ControlError> {
        self.line.clear();
        self.read
            .read_line(&mut self.line)
            .await
            .map_err(|source| ControlError::Io {
                path: self.path.clone(),
                source,
            })?;
        let Some(line) = self.line.strip_suffix('\n') else {
            return Ok(None);
        };
        serde_json::from_str(line)
            .map(Some)
            .map_err(|e| ControlError::Protocol(format!("bad response {line:?}: {e}")))
    }

    /// Reads until a final response, handing the others to `on_event`.
    pub(crate) async fn finish(
        mut self,
        mut on_event: impl FnMut(&Response),
    ) -> Result<Option<Response>, ControlError> {
        while let Some(resp) = self.next().await? {
            match resp {
                Response::Error { message, .. } => return Err(ControlError::Protocol(message)),
                Response::Done { .. } | Response::Ok { .. } | Response::Ps { .. } => {
                    return Ok(Some(resp));
                }
                other => on_event(&other),
            }
        }
        Ok(None)
    }
}

/// Asks the `pk up` running `config` to tear down, reporting progress to `on_event`; returns
/// once everything has stopped.
pub(crate) async fn down(
    config: &Path,
    grace: Option<Duration>,
    on_event: impl FnMut(&Response),
) -> Result<i32, ControlError> {
    let grace_ms = grace.map(|g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX));
    let call = Call::open(config, Op::Down { grace_ms }).await?;
    match call.finish(on_event).await? {
        Some(Response::Done { exit_code, .. }) => Ok(exit_code),
        // pk exits right after its last service stopped; EOF means it is gone.
        _ => Ok(0),
    }
}

/// Asks the `pk up` running `config` for the state of every service (`pk ps`), bounded by
/// `QUICK_TIMEOUT`.
pub(crate) async fn ps(config: &Path) -> Result<Response, ControlError> {
    let call = async { Call::open(config, Op::Ps).await?.finish(|_| {}).await };
    match tokio::time::timeout(QUICK_TIMEOUT, call).await {
        Ok(Ok(Some(resp @ Response::Ps { .. }))) => Ok(resp),
        Ok(Ok(_)) => Err(ControlError::Protocol("no answer to ps".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ControlError::Protocol("timed out waiting for ps".into())),
    }
}

//! The client side: `pk down` and friends talk to a running `pk up`.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{PROTOCOL_VERSION, Request, Response};
use super::{ControlError, socket_path};

/// Progress of a `down`, as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum DownEvent {
    State { service: String, state: String },
}

/// Connecting to a live socket takes microseconds; this bounds a wedged peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the `pk up` running `config` to tear down, reporting progress to `on_event`; returns
/// once everything has stopped.
pub async fn down(
    config: &Path,
    grace: Option<Duration>,
    mut on_event: impl FnMut(DownEvent),
) -> Result<i32, ControlError> {
    let path = socket_path(config);
    let not_running = || ControlError::NotRunning {
        config: config.to_path_buf(),
        socket: path.clone(),
    };
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
    let (read, mut write) = stream.into_split();
    let request = Request::Down {
        v: PROTOCOL_VERSION,
        grace_ms: grace.map(|g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX)),
    };
    let mut line =
        serde_json::to_vec(&request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .map_err(|source| ControlError::Io {
            path: path.clone(),
            source,
        })?;
    let mut lines = BufReader::new(read).lines();
    loop {
        let next = lines.next_line().await.map_err(|source| ControlError::Io {
            path: path.clone(),
            source,
        })?;
        // pk exits right after its last service stopped; EOF means it is gone.
        let Some(line) = next else { return Ok(0) };
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::State { service, state, .. }) => {
                on_event(DownEvent::State { service, state });
            }
            Ok(Response::Done { exit_code, .. }) => return Ok(exit_code),
            Ok(Response::Error { message, .. }) => return Err(ControlError::Protocol(message)),
            Err(e) => {
                return Err(ControlError::Protocol(format!(
                    "bad response {line:?}: {e}"
                )));
            }
        }
    }
}

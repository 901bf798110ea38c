//! The server side: binds the socket (replacing a stale one), accepts same-uid peers and
//! turns requests into engine intents.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{PROTOCOL_VERSION, Request, Response};
use super::{ControlError, ensure_socket_dir, socket_path};
use crate::engine::{EngineHandle, Input, Intent, Snapshot};

/// A bound control socket; the file is removed when this is dropped.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds the socket for `config`. A live pk on it → `Busy`; a stale file → replaced.
    pub fn bind(config: &Path) -> Result<Server, ControlError> {
        ensure_socket_dir()?;
        let path = socket_path(config);
        let io = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        if path.exists() {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => {
                    return Err(ControlError::Busy {
                        config: config.to_path_buf(),
                        socket: path,
                    });
                }
                Err(_) => std::fs::remove_file(&path).map_err(io)?,
            }
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        Ok(Server { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until the returned task is aborted.
    pub fn serve(self, engine: EngineHandle) -> tokio::task::JoinHandle<()> {
        let server = Arc::new(self);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = server.listener.accept().await else {
                    continue;
                };
                let engine = engine.clone();
                let keep_socket = Arc::clone(&server);
                tokio::spawn(async move {
                    let _keep_socket = keep_socket;
                    // A client that goes away mid-answer is not pk's problem.
                    let _ = handle(stream, engine).await;
                });
            }
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: a leftover file is detected as stale by the next bind.
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(stream: UnixStream, engine: EngineHandle) -> std::io::Result<()> {
    let own_uid = rustix::process::getuid().as_raw();
    let (read, mut write) = stream.into_split();
    let peer_ok = write
        .as_ref()
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == own_uid);
    if !peer_ok {
        return send(&mut write, &error("peer uid differs from pk's")).await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    match serde_json::from_str::<Request>(&line) {
        Ok(Request::Down { v, grace_ms }) if v == PROTOCOL_VERSION => {
            let grace = grace_ms.map(Duration::from_millis);
            // The engine only goes away once everything has stopped, which is what we wait for.
            let _ = engine
                .inputs
                .send(Input::Intent(Intent::Shutdown { grace }));
            stream_until_settled(&mut write, engine).await
        }
        Ok(Request::Down { v, .. }) => {
            send(
                &mut write,
                &error(&format!("unsupported protocol version {v}")),
            )
            .await
        }
        Err(e) => send(&mut write, &error(&format!("bad request: {e}"))).await,
    }
}

/// Sends every state change until the stack has settled, then `Done`.
async fn stream_until_settled(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    mut engine: EngineHandle,
) -> std::io::Result<()> {
    // Only changes from here on are news to the client.
    let mut last: Option<Arc<Snapshot>> = Some(Arc::clone(&engine.snapshots.borrow_and_update()));
    if engine.snapshots.changed().await.is_err() {
        return Ok(());
    }
    loop {
        let snap = Arc::clone(&engine.snapshots.borrow_and_update());
        for (i, s) in snap.services.iter().enumerate() {
            let changed = last
                .as_ref()
                .is_none_or(|l| l.services.get(i).is_none_or(|o| o.state != s.state));
            if changed && s.state != "inactive" {
                let msg = Response::State {
                    v: PROTOCOL_VERSION,
                    service: s.name.clone(),
                    state: s.state.to_string(),
                };
                send(write, &msg).await?;
            }
        }
        if snap.settled {
            let exit_code = i32::from(
                snap.services
                    .iter()
                    .any(|s| matches!(s.state, "exited" | "crashed" | "failed" | "skipped")),
            );
            let done = Response::Done {
                v: PROTOCOL_VERSION,
                exit_code,
            };
            return send(write, &done).await;
        }
        last = Some(snap);
        if engine.snapshots.changed().await.is_err() {
            return Ok(());
        }
    }
}

fn error(message: &str) -> Response {
    Response::Error {
        v: PROTOCOL_VERSION,
        message: message.to_string(),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, msg: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

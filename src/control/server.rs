//! The server side: binds the socket (replacing a stale one), accepts same-uid peers and
//! turns requests into engine intents, answering from snapshots and the log hub.
//!
//! Invariant: the server never changes service state itself; it only sends intents and waits
//! on published snapshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::protocol::{Failure, Op, PROTOCOL_VERSION, PsRow, Request, Response, WaitFor};
use super::{ControlError, ensure_socket_dir, lock_path, socket_path};
use crate::engine::{EngineHandle, Input, Intent, ServiceSnapshot, Snapshot};
use crate::logs::hub::{FOLLOWER_BUDGET, Follow, HubHandle, LogQuery, LogRecord, follow_channel};
use crate::plan::Plan;
use crate::process::Containment;
use crate::process::runlock::RunLock;
use crate::vocab::{Condition, Progress, ServiceId, State, Verdict, meets};

/// A request must arrive this soon after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound control socket; the file is removed when this is dropped, and the lock beside it
/// is held until then.
pub(crate) struct Server {
    listener: UnixListener,
    path: PathBuf,
    /// Held, never read: its `flock` says a live pk serves `path` (see `process::runlock`).
    _lock: RunLock,
}

/// CPU % and memory bytes of each service's tree, for `ps`.
pub(crate) type MetricsFn = dyn Fn(&Snapshot) -> Vec<(Option<f64>, Option<u64>)> + Send + Sync;

/// What requests are answered from.
#[derive(Clone)]
pub(crate) struct ServerContext {
    pub engine: EngineHandle,
    pub hub: HubHandle,
    pub plan: Arc<Plan>,
    pub containment: Arc<Containment>,
    pub metrics: Arc<MetricsFn>,
}

impl Server {
    /// Binds the socket for `config`. A live pk on it → `Busy`; a stale file → replaced.
    ///
    /// Stale is proven, not guessed: the lock beside the socket is free (its holder died), and
    /// nothing answers on the socket. Any other error connecting leaves the file alone.
    pub(crate) fn bind(config: &Path) -> Result<Server, ControlError> {
        ensure_socket_dir()?;
        let path = socket_path(config);
        let io = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        let busy = || ControlError::Busy {
            config: config.to_path_buf(),
            socket: path.clone(),
        };
        let Some(lock) = RunLock::take(&lock_path(config)).map_err(io)? else {
            return Err(busy());
        };
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
            Ok(_) => match std::os::unix::net::UnixStream::connect(&path) {
                // A pk that does not take the lock (an older version) still answers.
                Ok(_) => return Err(busy()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    ) =>
                {
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            },
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        Ok(Server {
            listener,
            path,
            _lock: lock,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes what a dead pk left of `config`'s socket: the socket file and its lock file,
    /// only when provably stale (as in [`Server::bind`]); a live pk's are left alone. Returns
    /// whether the lock was free.
    pub(crate) fn remove_stale(config: &Path) -> std::io::Result<bool> {
        let Some(lock) = RunLock::take(&lock_path(config))? else {
            return Ok(false);
        };
        let path = socket_path(config);
        if std::fs::symlink_metadata(&path).is_ok()
            && std::os::unix::net::UnixStream::connect(&path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            std::fs::remove_file(&path)?;
        }
        // Removes the lock file, then lets go.
        drop(lock);
        Ok(true)
    }

    /// Serves connections until the returned task is aborted.
    ///
    /// When accepting fails for want of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`),
    /// the loop pauses before it tries again instead of spinning: the pending connection stays
    /// in the backlog until a descriptor is free.
    pub(crate) fn serve(self, ctx: ServerContext) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let stream = match self.listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        if let Some(pause) = accept_pause(&e) {
                            tokio::time::sleep(pause).await;
                        }
                        continue;
                    }
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-answer is not pk's problem.
                    let _ = handle(stream, ctx).await;
                });
            }
        })
    }
}

/// How long to wait before accepting again after `error`: a shortage of descriptors or
/// memory does not go away by retrying at once. None for errors about one connection only
/// (it was aborted before it was accepted): the next one is taken at once.
fn accept_pause(error: &std::io::Error) -> Option<Duration> {
    match error.raw_os_error() {
        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO) => None,
        _ => Some(ACCEPT_PAUSE),
    }
}

/// The pause after a failed `accept` (see `accept_pause`).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The longest request line served; a longer one is answered with an `error`.
pub(super) const MAX_REQUEST: usize = 1024 * 1024;

/// Reads one request line of at most `MAX_REQUEST` bytes (a client that half-closes after its
/// request may leave out the newline); Err(message) for the `error` answer when it is longer,
/// empty, or not UTF-8.
async fn read_request(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> std::io::Result<Result<String, String>> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX) + 1;
    (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?;
    if line.len() > MAX_REQUEST {
        return Ok(Err(format!("request longer than {MAX_REQUEST} bytes")));
    }
    if line.is_empty() {
        return Ok(Err(
            "no request before the end of the connection".to_string()
        ));
    }
    Ok(String::from_utf8(line).map_err(|e| {
        format!(
            "request is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    }))
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: a leftover file is detected as stale by the next bind. The lock (a
        // field) is let go only after this.
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(stream: UnixStream, ctx: ServerContext) -> std::io::Result<()> {
    let own_uid = rustix::process::getuid().as_raw();
    let (read, mut write) = stream.into_split();
    let peer_ok = write
        .as_ref()
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == own_uid);
    if !peer_ok {
        return send(&mut write, &error("peer uid differs from pk's")).await;
    }
    let mut reader = BufReader::new(read);
    let line = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut reader)).await {
        Err(_) => return send(&mut write, &error("no request line within 10s")).await,
        Ok(read) => match read? {
            Ok(line) => line,
            Err(msg) => return send(&mut write, &error(&msg)).await,
        },
    };
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) if r.v == PROTOCOL_VERSION => r,
        Ok(r) => {
            let msg = format!(
                "unsupported protocol version {} (this pk speaks {PROTOCOL_VERSION})",
                r.v
            );
            return send(&mut write, &error(&msg)).await;
        }
        Err(e) => return send(&mut write, &error(&format!("bad request: {e}"))).await,
    };
    let ids = match &request.op {
        Op::Logs { services, .. }
        | Op::Start { services }
        | Op::Stop { services }
        | Op::Restart { services, .. }
        | Op::Wait { services, .. } => match resolve(&ctx.plan, services) {
            Ok(ids) => ids,
            Err(msg) => return send(&mut write, &error(&msg)).await,
        },
        Op::Down { .. } | Op::Ps | Op::Watch => Vec::new(),
    };
    match request.op {
        Op::Down { grace_ms } => down(&mut write, ctx, grace_ms.map(Duration::from_millis)).await,
        Op::Ps => send(&mut write, &ps(&ctx)).await,
        Op::Watch => stream_snapshots(&mut write, ctx.engine).await,
        Op::Logs {
            tail,
            since_ms,
            follow,
            ..
        } => logs(&mut write, &ctx, ids, tail, since_ms, follow).await,
        Op::Start { .. } => {
            // Read before the intents: a service not running yet must show a new run.
            let before = runs(&ctx, &ids, false);
            for &service in &ids {
                intent(&ctx, Intent::Start { service });
            }
            ctx.engine.sync().await;
            wait_for(&mut write, ctx, ids, WaitFor::Up, None, Some(before)).await
        }
        Op::Restart { dependents, .. } => {
            let before = runs(&ctx, &ids, true);
            for &service in &ids {
                intent(
                    &ctx,
                    Intent::Restart {
                        service,
                        cause: None,
                        dependents,
                    },
                );
            }
            ctx.engine.sync().await;
            wait_for(&mut write, ctx, ids, WaitFor::Up, None, Some(before)).await
        }
        Op::Stop { .. } => {
            for &service in &ids {
                intent(&ctx, Intent::Stop { service });
            }
            ctx.engine.sync().await;
            let mut affected = Vec::new();
            for &id in &ids {
                for d in ctx.plan.with_dependents(id) {
                    if !affected.contains(&d) {
                        affected.push(d);
                    }
                }
            }
            wait_stopped(&mut write, ctx, affected).await
        }
        Op::Wait {
            until, timeout_ms, ..
        } => {
            let timeout = timeout_ms.map(Duration::from_millis);
            wait_for(&mut write, ctx, ids, until, timeout, None).await
        }
    }
}

fn intent(ctx: &ServerContext, intent: Intent) {
    // The engine only goes away once everything has stopped; nothing is left to do then.
    let _ = ctx.engine.inputs.send(Input::Intent(intent));
}

/// Service names → ids (`Plan::service_ids`); every unknown name is reported.
fn resolve(plan: &Plan, names: &[String]) -> Result<Vec<ServiceId>, String> {
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        // A declared name means every copy of a replicated service (`web` → `web-0`, `web-1`).
        let found = plan.service_ids(name);
        if found.is_empty() {
            unknown.push(name.as_str());
        }
        for id in found {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if unknown.is_empty() {
        Ok(ids)
    } else {
        let known: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
        Err(format!(
            "no service named {} (services: {})",
            unknown.join(", "),
            known.join(", ")
        ))
    }
}

/// Each service's run count, which a request must see grow before it counts as done; None for
/// a service that is already up when `even_live` is false (`pk start` of a running service).
fn runs(ctx: &ServerContext, ids: &[ServiceId], even_live: bool) -> Vec<Option<u64>> {
    let snap = ctx.engine.snapshots.borrow();
    ids.iter()
        .map(|&id| {
            let s = &snap.services[id];
            let live = s.state.is_up();
            (even_live || !live).then_some(s.runs)
        })
        .collect()
}

fn ps(ctx: &ServerContext) -> Response {
    let snap = Arc::clone(&ctx.engine.snapshots.borrow());
    let usage = (ctx.metrics)(&snap);
    let services = snap
        .services
        .iter()
        .zip(usage.into_iter().chain(std::iter::repeat((None, None))))
        .map(|(s, (cpu, mem))| PsRow {
            service: ServiceSnapshot::clone(s),
            cpu_percent: cpu,
            memory_bytes: mem,
        })
        .collect();
    Response::Ps {
        v: PROTOCOL_VERSION,
        name: ctx.plan.name.clone(),
        config: ctx.plan.config_path.display().to_string(),
        pid: std::process::id(),
        containment: ctx.containment.describe(),
        services,
    }
}

/// Encoded log lines sent per write: what a client that stops reading can hold in memory here.
const WRITE_BATCH: usize = 256 * 1024;

async fn logs(
    write: &mut OwnedWriteHalf,
    ctx: &ServerContext,
    ids: Vec<ServiceId>,
    tail: Option<usize>,
    since_ms: Option<u64>,
    follow: bool,
) -> std::io::Result<()> {
    let (follow_tx, mut follow_rx) = follow_channel(FOLLOWER_BUDGET);
    let (reply_tx, _) = oneshot::channel();
    let query = LogQuery {
        services: ids,
        tail,
        since_ms,
        follow: follow.then_some(follow_tx),
        reply: reply_tx,
    };
    let Some(reply) = ctx.hub.query(query).await else {
        return send(write, &error("the log hub has stopped")).await;
    };
    if reply.dropped > 0 {
        let dropped = Response::Dropped {
            v: PROTOCOL_VERSION,
            lines: reply.dropped,
        };
        send(write, &dropped).await?;
    }
    // History goes out a batch per write, so that a stalled client holds at most one batch of
    // encoded lines here, not the whole history encoded (several times its size in JSON).
    let mut buf = Vec::new();
    for record in reply.records {
        encode(&mut buf, &log_line(&ctx.plan, &record))?;
        if buf.len() >= WRITE_BATCH {
            write.write_all(&buf).await?;
            buf.clear();
        }
    }
    write.write_all(&buf).await?;
    if !follow {
        return send(write, &ok(Vec::new())).await;
    }
    while let Some(item) = follow_rx.recv().await {
        buf.clear();
        encode(&mut buf, &followed(&ctx.plan, item))?;
        // A batch per write, bounded so that a stalled client holds at most this much here.
        while buf.len() < WRITE_BATCH {
            let Some(more) = follow_rx.try_recv() else {
                break;
            };
            encode(&mut buf, &followed(&ctx.plan, more))?;
        }
        write.write_all(&buf).await?;
    }
    Ok(())
}

fn followed(plan: &Plan, item: Follow) -> Response {
    match item {
        Follow::Record(record) => log_line(plan, &record),
        Follow::Shed(lines) => Response::Shed {
            v: PROTOCOL_VERSION,
            lines,
        },
    }
}

fn log_line(plan: &Plan, record: &LogRecord) -> Response {
    Response::Log {
        v: PROTOCOL_VERSION,
        service: record.service.map(|s| plan.services[s].name.clone()),
        kind: record.kind,
        ts_ms: record.ts_ms,
        line: record.line.clone(),
    }
}

/// Where a service stands with respect to a wait.
enum Standing {
    Met,
    Pending,
    Never(String),
}

/// Judges a wait by the engine's own rule (`vocab::meets`): `until` names a condition.
#[expect(
    clippy::match_same_arms,
    reason = "one arm per `until`, read as a table"
)]
fn standing(plan: &Plan, id: ServiceId, s: &ServiceSnapshot, until: WaitFor) -> Standing {
    let has_ready = plan.services[id].ready.is_some();
    if until == WaitFor::Healthy && !has_ready {
        return Standing::Never(format!("{} has no `ready` probe", s.name));
    }
    let ended = matches!(s.state, State::Completed | State::Exited | State::TimedOut);
    let condition = match until {
        WaitFor::Started => Condition::Started,
        WaitFor::Healthy => Condition::Healthy,
        WaitFor::Completed => Condition::CompletedSuccessfully,
        // `up`: a run that ended counts when it succeeded.
        WaitFor::Up if ended => Condition::CompletedSuccessfully,
        WaitFor::Up if has_ready => Condition::Healthy,
        WaitFor::Up => Condition::Started,
    };
    let progress = Progress {
        state: s.state,
        spawned: !s.pids.is_empty(),
        completed_ok: s.state == State::Completed,
    };
    match meets(progress, condition) {
        Verdict::Met => Standing::Met,
        Verdict::Wait => Standing::Pending,
        Verdict::Never => Standing::Never(
            s.reason
                .clone()
                .or_else(|| s.last_exit.clone())
                .unwrap_or_else(|| s.state.to_string()),
        ),
    }
}

/// Waits until every service meets `until` (a service in `fresh` must first have been spawned
/// anew), streaming state changes; answers `ok` with the failures.
async fn wait_for(
    write: &mut OwnedWriteHalf,
    mut ctx: ServerContext,
    ids: Vec<ServiceId>,
    until: WaitFor,
    timeout: Option<Duration>,
    fresh: Option<Vec<Option<u64>>>,
) -> std::io::Result<()> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last: Option<Arc<Snapshot>> = None;
    loop {
        let snap = Arc::clone(&ctx.engine.snapshots.borrow_and_update());
        send_changes(write, last.as_deref(), &snap, &ids).await?;
        let mut failed = Vec::new();
        let mut pending = false;
        for (i, &id) in ids.iter().enumerate() {
            let s = &snap.services[id];
            // The request asked for a new run: until it comes, only a service that will not
            // get one without a new request (a later `pk stop` won, pk is shutting down, a
            // dependency failed) has an answer. Snapshots read here postdate the request
            // (`EngineHandle::sync`), so a final state is the engine's verdict on it.
            let stale = fresh
                .as_ref()
                .and_then(|f| f[i])
                .is_some_and(|before| s.runs <= before);
            let standing = match standing(&ctx.plan, id, s, until) {
                _ if stale && s.state.is_active() => Standing::Pending,
                _ if stale && snap.shutting_down => Standing::Never("pk is shutting down".into()),
                _ if stale && s.state == State::Stopped => {
                    Standing::Never("stopped before it ran again".into())
                }
                Standing::Never(reason) => Standing::Never(reason),
                _ if stale => Standing::Never(format!("{} before it ran again", s.state)),
                standing => standing,
            };
            match standing {
                Standing::Met => {}
                Standing::Pending => pending = true,
                Standing::Never(reason) => failed.push(Failure {
                    service: s.name.clone(),
                    state: s.state,
                    reason,
                }),
            }
        }
        if !pending || snap.settled {
            return send(write, &ok(failed)).await;
        }
        last = Some(snap);
        let changed = ctx.engine.snapshots.changed();
        let timed_out = match deadline {
            Some(d) => tokio::time::timeout_at(d, changed)
                .await
                .map_or(true, |r| r.is_err()),
            None => changed.await.is_err(),
        };
        if timed_out {
            let snap = Arc::clone(&ctx.engine.snapshots.borrow());
            let failed = ids
                .iter()
                .filter_map(|&id| {
                    let s = &snap.services[id];
                    match standing(&ctx.plan, id, s, until) {
                        Standing::Met => None,
                        _ => Some(Failure {
                            service: s.name.clone(),
                            state: s.state,
                            reason: s.waiting_for.as_ref().map_or_else(
                                || "timed out".to_string(),
                                |w| format!("timed out waiting for {w}"),
                            ),
                        }),
                    }
                })
                .collect();
            return send(write, &ok(failed)).await;
        }
    }
}

/// Waits until none of the services has a live tree.
async fn wait_stopped(
    write: &mut OwnedWriteHalf,
    mut ctx: ServerContext,
    ids: Vec<ServiceId>,
) -> std::io::Result<()> {
    let mut last: Option<Arc<Snapshot>> = None;
    loop {
        let snap = Arc::clone(&ctx.engine.snapshots.borrow_and_update());
        send_changes(write, last.as_deref(), &snap, &ids).await?;
        let live = ids.iter().any(|&id| snap.services[id].state.is_active());
        if !live {
            return send(write, &ok(Vec::new())).await;
        }
        last = Some(snap);
        if ctx.engine.snapshots.changed().await.is_err() {
            return send(write, &ok(Vec::new())).await;
        }
    }
}

/// Sends a `state` line for each of `ids` whose state differs from `last`.
async fn send_changes(
    write: &mut OwnedWriteHalf,
    last: Option<&Snapshot>,
    snap: &Snapshot,
    ids: &[ServiceId],
) -> std::io::Result<()> {
    for &id in ids {
        let s = &snap.services[id];
        if last.is_none_or(|l| l.services[id].state != s.state) {
            let msg = Response::State {
                v: PROTOCOL_VERSION,
                service: s.name.clone(),
                state: s.state,
            };
            send(write, &msg).await?;
        }
    }
    Ok(())
}

/// Sends the current snapshot, then each new one, until the engine is gone.
async fn stream_snapshots(
    write: &mut OwnedWriteHalf,
    mut engine: EngineHandle,
) -> std::io::Result<()> {
    loop {
        let snapshot = Snapshot::clone(&engine.snapshots.borrow_and_update());
        let msg = Response::Snapshot {
            v: PROTOCOL_VERSION,
            snapshot,
        };
        send(write, &msg).await?;
        if engine.snapshots.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// `pk down`: shuts the stack down, streaming every change that causes, then `done`.
async fn down(
    write: &mut OwnedWriteHalf,
    ctx: ServerContext,
    grace: Option<Duration>,
) -> std::io::Result<()> {
    // Read before the intent: every change it causes is news to the client, even one the
    // engine publishes before this task runs again.
    let before = Arc::clone(&ctx.engine.snapshots.borrow());
    intent(&ctx, Intent::Shutdown { grace });
    stream_until_settled(write, ctx.engine, before).await
}

/// Sends every state change since `before` until the stack has settled, then `done`.
async fn stream_until_settled(
    write: &mut OwnedWriteHalf,
    mut engine: EngineHandle,
    before: Arc<Snapshot>,
) -> std::io::Result<()> {
    let mut last = before;
    loop {
        let snap = Arc::clone(&engine.snapshots.borrow_and_update());
        let all: Vec<ServiceId> = (0..snap.services.len())
            .filter(|&i| snap.services[i].state != State::Inactive)
            .collect();
        send_changes(write, Some(&last), &snap, &all).await?;
        if snap.settled {
            let done = Response::Done {
                v: PROTOCOL_VERSION,
                exit_code: snap.exit_code,
            };
            return send(write, &done).await;
        }
        last = snap;
        if engine.snapshots.changed().await.is_err() {
            return Ok(());
        }
    }
}

fn ok(failed: Vec<Failure>) -> Response {
    Response::Ok {
        v: PROTOCOL_VERSION,
        failed,
    }
}

fn error(message: &str) -> Response {
    Response::Error {
        v: PROTOCOL_VERSION,
        message: message.to_string(),
    }
}

fn encode(buf: &mut Vec<u8>, msg: &Response) -> std::io::Result<()> {
    serde_json::to_writer(&mut *buf, msg).map_err(std::io::Error::other)?;
    buf.push(b'\n');
    Ok(())
}

async fn send(write: &mut OwnedWriteHalf, msg: &Response) -> std::io::Result<()> {
    let mut line = Vec::new();
    encode(&mut line, msg)?;
    write.write_all(&line).await
}

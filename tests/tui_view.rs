//! Snapshot tests of the dashboard's pure view functions (ratatui `TestBackend` + insta), and
//! of how keys become intents and scroll positions.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pk::engine::{Intent, ServiceSnapshot, Snapshot};
use pk::logs::Stream;
use pk::metrics::Usage;
use pk::ui::tui::{App, LogStore, Outcome, draw};
use pk::vocab::State;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

/// A fixed "now": 2026-01-01 12:00:00 UTC.
const NOW: u64 = 1_767_268_800_000;

fn service(name: &str, state: State) -> ServiceSnapshot {
    ServiceSnapshot {
        name: name.into(),
        state,
        ..ServiceSnapshot::default()
    }
}

fn live(mut s: ServiceSnapshot, pid: u32, up_ms: u64) -> ServiceSnapshot {
    s.pids = vec![pid];
    s.started_at_ms = Some(NOW - up_ms);
    s
}

/// One service in every state the engine publishes.
fn every_state() -> Snapshot {
    let mut db = live(service("db", State::Healthy), 101, 3_723_000);
    db.health = Some(State::Healthy);
    let mut api = live(service("api", State::Running), 102, 65_000);
    api.restarts = 2;
    api.last_exit = Some("exited 1".into());
    let mut web = service("web", State::Pending);
    web.waiting_for = Some("api (healthy)".into());
    let mut probe = live(service("probe", State::Starting), 103, 1_500);
    probe.health = Some(State::Starting);
    let mut worker = service("worker", State::Restarting);
    worker.restart_at_ms = Some(NOW + 3_200);
    worker.restarts = 4;
    worker.last_exit = Some("killed by SEGV".into());
    let mut queue = live(service("queue", State::Stopping), 104, 90_000);
    queue.kill_at_ms = Some(NOW + 4_500);
    let mut cron = service("cron", State::Crashed);
    cron.reason = Some("restarted 5 times within 1m".into());
    cron.last_exit = Some("exited 2".into());
    let mut mail = service("mail", State::Failed);
    mail.reason = Some("ready deadline passed (30s)".into());
    let mut docs = service("docs", State::Skipped);
    docs.reason = Some("mail failed".into());
    let mut migrate = service("migrate", State::Completed);
    migrate.last_exit = Some("exited 0".into());
    let mut old = service("old", State::Stopped);
    old.last_exit = Some("killed by KILL".into());
    let extra = service("extra", State::Inactive);
    Snapshot {
        services: [
            db, api, web, probe, worker, queue, cron, mail, docs, migrate, old, extra,
        ]
        .map(Arc::new)
        .into(),
        ..Snapshot::default()
    }
}

fn usage(n: usize) -> Vec<Option<Usage>> {
    let first_two = [(12.5, 48), (25.0, 96)];
    (0..n)
        .map(|i| {
            first_two.get(i).map(|&(cpu_percent, mib)| Usage {
                cpu_percent,
                rss_bytes: mib * 1024 * 1024,
            })
        })
        .collect()
}

fn app_for(snap: &Snapshot) -> App {
    let names = snap.services.iter().map(|s| s.name.clone()).collect();
    App::new("shop", names, "cgroup v2")
}

fn logs(n: usize) -> LogStore {
    let mut store = LogStore::new(n, 1 << 20);
    store.push_notice(
        None,
        "containment: cgroup v2 (/sys/fs/cgroup/unified/pk-1)",
        NOW,
    );
    store.push_notice(Some(0), "started (pid 101)", NOW + 1);
    store.push_output(
        0,
        Stream::Stdout,
        b"\x1b[1;32mLOG\x1b[0m:  database system is ready\n",
        NOW + 2,
    );
    store.push_output(1, Stream::Stdout, b"listening on :8080\n", NOW + 3);
    store.push_output(
        0,
        Stream::Stderr,
        b"WARNING: checkpoints too frequent\n",
        NOW + 4,
    );
    store.push_output(
        1,
        Stream::Stdout,
        b"GET /health 200\nGET /api/items 200\n",
        NOW + 5,
    );
    store.push_output(
        1,
        Stream::Stdout,
        b"building 10%\rbuilding 55%\rbuilding 100%\n",
        NOW + 6,
    );
    store.push_notice(Some(1), "restarting in 250ms (exited 1)", NOW + 7);
    store
}

fn render(
    app: &mut App,
    store: &LogStore,
    snap: &Snapshot,
    w: u16,
    h: u16,
) -> Terminal<TestBackend> {
    app.size = Rect::new(0, 0, w, h);
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    let usage = usage(snap.services.len());
    term.draw(|f| draw(f, app, store, snap, &usage, NOW))
        .expect("draw");
    term
}

#[test]
fn service_states() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    let term = render(&mut app, &store, &snap, 120, 24);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn merged_logs_with_timestamps() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    app.merged = true;
    app.timestamps = true;
    let term = render(&mut app, &store, &snap, 100, 24);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn search_highlight() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    app.selected = 1;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    app.size = Rect::new(0, 0, 60, 20);
    for c in "/get".chars() {
        app.on_key(key(c), &store, &snap);
    }
    app.on_key(
        KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
        &store,
        &snap,
    );
    let term = render(&mut app, &store, &snap, 60, 20);
    insta::assert_snapshot!(term.backend());
    // Matches are highlighted: the newest match (current) differently from the others.
    let buf = term.backend().buffer();
    let row_of = |text: &str| {
        (0..buf.area.height)
            .find(|&y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .contains(text)
            })
            .expect("line shown")
    };
    let older = buf[(0, row_of("GET /health"))].style().bg;
    let current = buf[(0, row_of("GET /api/items"))].style().bg;
    let plain = buf[(4, row_of("GET /health"))].style().bg;
    assert!(
        older.is_some() && current.is_some(),
        "matches have a background"
    );
    assert_ne!(older, current, "the current match stands out");
    assert!(
        matches!(plain, None | Some(ratatui::style::Color::Reset)),
        "text after the match is not highlighted"
    );
}

#[test]
fn help_overlay() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    app.help = true;
    let term = render(&mut app, &store, &snap, 80, 30);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn narrow_terminal() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    app.selected = 5;
    let term = render(&mut app, &store, &snap, 40, 14);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn shutdown_progress_wrap_and_dropped_lines() {
    let mut snap = every_state();
    snap.shutting_down = true;
    let mut store = LogStore::new(snap.services.len(), 4096);
    for i in 0..200 {
        let line = format!("line {i:03} {}\n", "x".repeat(50));
        store.push_output(0, Stream::Stdout, line.as_bytes(), NOW);
    }
    let mut app = app_for(&snap);
    app.wrap = true;
    app.interrupts = 1;
    let term = render(&mut app, &store, &snap, 50, 16);
    insta::assert_snapshot!(term.backend());
}

fn press(
    app: &mut App,
    store: &LogStore,
    snap: &Snapshot,
    code: KeyCode,
    mods: KeyModifiers,
) -> Outcome {
    app.on_key(KeyEvent::new(code, mods), store, snap)
}

#[test]
fn keys_become_intents() {
    let snap = every_state();
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    let none = KeyModifiers::NONE;
    assert_eq!(
        press(&mut app, &store, &snap, KeyCode::Down, none),
        Outcome::Redraw
    );
    assert_eq!(
        press(&mut app, &store, &snap, KeyCode::Char('r'), none),
        Outcome::Send(Intent::Restart {
            service: 1,
            cause: None,
            dependents: false
        })
    );
    assert_eq!(
        press(&mut app, &store, &snap, KeyCode::Char('x'), none),
        Outcome::Send(Intent::Stop { service: 1 })
    );
    assert_eq!(
        press(&mut app, &store, &snap, KeyCode::Char('s'), none),
        Outcome::Send(Intent::Start { service: 1 })
    );
    let ctrl_c = |app: &mut App| {
        press(
            app,
            &store,
            &snap,
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
        )
    };
    assert_eq!(
        ctrl_c(&mut app),
        Outcome::Send(Intent::Shutdown { grace: None })
    );
    assert_eq!(ctrl_c(&mut app), Outcome::Send(Intent::ForceKill));
    assert_eq!(ctrl_c(&mut app), Outcome::ExitNow);
}

#[test]
fn scrolling_is_anchored_while_output_arrives() {
    let snap = every_state();
    let mut store = LogStore::new(snap.services.len(), 1 << 20);
    for i in 0..100 {
        store.push_output(0, Stream::Stdout, format!("old {i}\n").as_bytes(), NOW);
    }
    let mut app = app_for(&snap);
    app.size = Rect::new(0, 0, 80, 24);
    assert_eq!(app.top, None, "follows at first");
    press(&mut app, &store, &snap, KeyCode::PageUp, KeyModifiers::NONE);
    let top = app.top.expect("scrolled");
    for i in 0..50 {
        store.push_output(0, Stream::Stdout, format!("new {i}\n").as_bytes(), NOW);
    }
    assert_eq!(app.top, Some(top), "new output does not move the view");
    press(
        &mut app,
        &store,
        &snap,
        KeyCode::Char('G'),
        KeyModifiers::SHIFT,
    );
    assert_eq!(app.top, None, "G follows again");
    press(
        &mut app,
        &store,
        &snap,
        KeyCode::Char('g'),
        KeyModifiers::NONE,
    );
    for _ in 0..20 {
        press(
            &mut app,
            &store,
            &snap,
            KeyCode::PageDown,
            KeyModifiers::NONE,
        );
    }
    assert_eq!(app.top, None, "scrolling to the end follows again");
}

#[test]
fn mouse_click_selects_and_wheel_scrolls() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let snap = every_state();
    let mut store = LogStore::new(snap.services.len(), 1 << 20);
    for i in 0..100 {
        store.push_output(0, Stream::Stdout, format!("line {i}\n").as_bytes(), NOW);
    }
    let mut app = app_for(&snap);
    app.size = Rect::new(0, 0, 120, 30);
    let mouse = |kind, row| MouseEvent {
        kind,
        column: 5,
        row,
        modifiers: KeyModifiers::NONE,
    };
    // Row 0 is the header; row 3 is the third service.
    let click = mouse(MouseEventKind::Down(MouseButton::Left), 3);
    assert_eq!(app.on_mouse(click, &store), Outcome::Redraw);
    assert_eq!(app.selected, 2);
    app.selected = 0;
    let wheel = mouse(MouseEventKind::ScrollUp, 25);
    assert_eq!(app.on_mouse(wheel, &store), Outcome::Redraw);
    assert!(app.top.is_some(), "the wheel over the logs scrolls them");
}

#[test]
fn replicas_are_grouped() {
    let snap = Snapshot {
        services: [
            live(service("db", State::Running), 101, 5_000),
            live(service("web-0", State::Running), 102, 5_000),
            live(service("web-1", State::Running), 103, 5_000),
            service("web-2", State::Pending),
            service("proxy", State::Pending),
        ]
        .map(Arc::new)
        .into(),
        ..Snapshot::default()
    };
    let store = logs(snap.services.len());
    let mut app = app_for(&snap);
    let term = render(&mut app, &store, &snap, 60, 16);
    insta::assert_snapshot!(term.backend());
}

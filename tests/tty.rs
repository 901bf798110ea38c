//! `tty: true` end to end (issue 12 part 3): the service runs on a pseudo-terminal of its own,
//! its output reaches the plain printer and the dashboard, its window size follows the
//! dashboard's log pane, and teardown leaves nothing. The dashboard runs on a pseudo-terminal
//! of the test's, its screen parsed with vt100; a guard kills pk by pid if a test fails.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use rustix::process::{Pid, Signal, kill_process};
use support::{Backend, DEADLINE, Project, notice_at, output_at, started_pids, wait_gone};

both_backends!(
    the_service_sees_a_terminal_in_a_session_of_its_own,
    teardown_leaves_nothing_of_a_terminal_service,
);

fn the_service_sees_a_terminal_in_a_session_of_its_own(backend: Backend) {
    let p = Project::new(
        r#"
services:
  check:
    command: [python3, -c, "import os, sys; print(sys.stdout.isatty(), sys.stdin.isatty(), sys.stderr.isatty()); print('to stderr', file=sys.stderr); print('own session', os.getsid(0) == os.getpid() == os.getpgid(0), os.ttyname(0) == os.ttyname(1))"]
    tty: true
  size:
    command: stty size
    tty: true
"#,
    )
    .backend(backend);
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let lines = &out.lines;
    output_at(lines, "check", "True True True");
    // stderr goes to the same terminal, read as the one output stream.
    output_at(lines, "check", "to stderr");
    output_at(lines, "check", "own session True True");
    // Plain mode, not on a terminal: 120 columns.
    output_at(lines, "size", "24 120");
}

/// Colours the program makes because it is on a terminal (`ls --color=auto`) are printed in
/// plain mode only where pk's own output has colours.
#[test]
fn plain_mode_keeps_colours_only_with_color() {
    let p = Project::new("services:\n  ls:\n    command: ls --color=auto\n    tty: true\n")
        .file("subdir/x", "");
    let coloured = p.pk(&["up", "--plain", "--color", "always"]).run();
    assert_eq!(coloured.code, 0, "{}", coloured.stderr);
    let line = coloured
        .lines
        .iter()
        .find(|l| l.contains("subdir"))
        .unwrap_or_else(|| panic!("no subdir in:\n{}", coloured.stdout()));
    assert!(line.contains("\x1b[0"), "ls coloured it: {line:?}");

    let plain = p.up().run();
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let text = plain.stdout();
    assert!(text.contains("ls | pk.yaml  subdir\n"), "{text:?}");
    assert!(!text.contains('\x1b'), "--color never strips it: {text:?}");
}

/// Python buffers stdout fully on a pipe; on a terminal, each line is written as it is printed.
#[test]
fn unflushed_lines_arrive_as_they_are_printed() {
    let p = Project::new(
        r#"
services:
  loop:
    command: [python3, -c, "import os, time\nprint('buffering', os.environ.get('PYTHONUNBUFFERED', 'off'))\nwhile not os.path.exists('go'): time.sleep(0.02)\nprint('after go')"]
    tty: true
    env: { PYTHONUNBUFFERED: null }
"#,
    );
    let mut up = p.up().spawn();
    // The service is still running (it waits for `go`), yet its line is here.
    up.wait_for_line("the first line", |l| l.ends_with("| buffering off"));
    std::fs::write(p.path().join("go"), "").unwrap();
    up.wait_for_line("the second line", |l| l.ends_with("| after go"));
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

fn teardown_leaves_nothing_of_a_terminal_service(backend: Backend) {
    let p = Project::new(
        r#"
grace: 2s
services:
  shell:
    command: "sleep 1000 & echo child $!; exec sleep 1000"
    tty: true
"#,
    )
    .backend(backend);
    let mut up = p.up().spawn();
    let started = up.wait_notice("shell", "started (pid");
    let child = up.wait_for_line("the background child", |l| l.contains("| child "));
    let child: u32 = child.rsplit(' ').next().unwrap().parse().unwrap();
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
    notice_at(&up.lines(), "shell", "stopped");
    for pid in started_pids(&started).into_iter().chain([child]) {
        wait_gone(pid, "a process of the terminal service");
    }
}

const ROWS: u16 = 30;
const COLS: u16 = 100;

/// `pk up` with its dashboard on a pseudo-terminal; killed by pid on drop if still running.
struct Dashboard {
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    input: Box<dyn Write + Send>,
}

impl Dashboard {
    fn start(dir: &Path) -> Dashboard {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_pk"));
        cmd.arg("up");
        cmd.cwd(dir);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("PK_FILE");
        cmd.env_remove("NO_COLOR");
        let child = pty.slave.spawn_command(cmd).expect("spawn pk on the pty");
        drop(pty.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        let input = pty.master.take_writer().expect("writer");
        Dashboard {
            child,
            master: pty.master,
            screen,
            input,
        }
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&vt100::Screen) -> bool) {
        support::wait_until(DEADLINE, what, || {
            let parser = self.screen.lock().unwrap();
            cond(parser.screen()).then_some(())
        });
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.screen
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(rows, cols);
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize the pty");
    }

    fn quit(&mut self) {
        self.input.write_all(b"q").expect("write to the pty");
        let child = &mut self.child;
        support::wait_until(DEADLINE, "pk to exit", || child.try_wait().unwrap());
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none()
            && let Some(pid) = self
                .child
                .process_id()
                .and_then(|p| Pid::from_raw(i32::try_from(p).ok()?))
        {
            // It may have exited meanwhile.
            let _ = kill_process(pid, Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// Where `text` is on the screen: (row, col) of its first character.
fn find(screen: &vt100::Screen, text: &str) -> Option<(u16, u16)> {
    let (rows, _) = screen.size();
    (0..rows).find_map(|row| {
        let line = screen.contents_between(row, 0, row + 1, 0);
        let col = line.find(text)?;
        Some((row, u16::try_from(line[..col].chars().count()).ok()?))
    })
}

/// `ls --color=auto` colours because it is on a terminal; the colours reach the dashboard.
#[test]
fn colours_reach_the_dashboard() {
    let p = Project::new(
        "services:\n  ls:\n    command: ls --color=auto; exec sleep 1000\n    tty: true\n",
    )
    .file("subdir/x", "");
    let mut pk = Dashboard::start(p.path());
    pk.wait_for("subdir in colour", |s| {
        find(s, "subdir").is_some_and(|(row, col)| {
            s.cell(row, col)
                .is_some_and(|c| c.fgcolor() != vt100::Color::Default)
        })
    });
    pk.quit();
}

/// `stty size` in the service reports the log pane's size, and the new one after a resize.
#[test]
fn the_window_size_follows_the_log_pane() {
    let p = Project::new(
        r#"
services:
  size:
    command: "trap 'echo size $(stty size)' WINCH; echo size $(stty size); while :; do sleep 0.05; done"
    tty: true
"#,
    );
    let mut pk = Dashboard::start(p.path());
    let shows = |size: pk::process::WinSize| {
        let text = format!("size {} {}", size.rows, size.cols);
        move |s: &vt100::Screen| s.contents().contains(&text)
    };
    let first = pk::ui::tui::log_pane_size(COLS, ROWS, 1);
    pk.wait_for("the first size", shows(first));
    pk.resize(40, 132);
    let second = pk::ui::tui::log_pane_size(132, 40, 1);
    assert_ne!(first, second);
    pk.wait_for("the size after the resize", shows(second));
    pk.quit();
}

/// The same child steps on the portable spawn path (`PK_SPAWN=fork`).
#[test]
fn the_fork_path_gives_a_terminal_too() {
    let p = Project::new(
        "services:\n  check:\n    command: [python3, -c, \"import os, sys; print(sys.stdout.isatty(), os.getsid(0) == os.getpid())\"]\n    tty: true\n",
    );
    let out = p.up().env("PK_SPAWN", "fork").run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "check", "True True");
}

/// What a terminal service writes, drawn by the dashboard's view (ratatui `TestBackend`): the
/// bytes come from a real `ls --color=auto` on a pk pseudo-terminal, the colours it chose
/// because it is on one are in the drawn cells.
#[test]
fn terminal_output_is_drawn_in_colour() {
    use pk::engine::{ServiceSnapshot, Snapshot};
    use pk::process::{Containment, SpawnSpec, WinSize};
    use pk::ui::tui::{App, LogStore, draw};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::style::{Color, Modifier};
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    std::fs::write(dir.path().join("file.txt"), "").unwrap();
    let env = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LS_COLORS", "di=01;34"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let stages = vec![vec!["ls".to_owned(), "--color=auto".to_owned()]];
    let spec = SpawnSpec {
        stages: &stages,
        cwd: dir.path(),
        env: &env,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let output = rt.block_on(async {
        let containment = Containment::detect();
        let size = WinSize { rows: 10, cols: 60 };
        let mut spawned = containment.spawn_on("ls", &spec, Some(size)).unwrap();
        let mut bytes = Vec::new();
        // The master reads EIO once the terminal's last holder is gone: the end of output.
        let _ = tokio::time::timeout(DEADLINE, spawned.stdout.read_to_end(&mut bytes)).await;
        spawned.tree.wait_drained().await;
        bytes
    });
    assert!(output.contains(&0x1b), "ls coloured its output: {output:?}");

    let mut store = LogStore::new(1, 1 << 20);
    store.push_output(0, pk::logs::Stream::Stdout, &output, 0);
    let snap = Snapshot {
        services: vec![std::sync::Arc::new(ServiceSnapshot {
            name: "ls".into(),
            state: pk::vocab::State::Completed,
            ..ServiceSnapshot::default()
        })],
        ..Snapshot::default()
    };
    let mut app = App::new("tty", vec!["ls".into()], "cgroup v2");
    app.size = ratatui::layout::Rect::new(0, 0, 60, 8);
    let mut term = Terminal::new(TestBackend::new(60, 8)).unwrap();
    term.draw(|f| draw(f, &app, &store, &snap, &[None], 0))
        .unwrap();
    insta::assert_snapshot!(term.backend());
    let buf = term.backend().buffer();
    let (x, y) = (0..buf.area.height)
        .find_map(|y| {
            let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            let x = row.find("subdir")?;
            Some((u16::try_from(row[..x].chars().count()).unwrap(), y))
        })
        .expect("subdir drawn");
    let style = buf[(x, y)].style();
    assert_eq!(style.fg, Some(Color::Indexed(4)), "{style:?}");
    assert!(style.add_modifier.contains(Modifier::BOLD), "{style:?}");
    let plain = buf[(0, y)].style();
    assert_ne!(
        plain.fg,
        Some(Color::Indexed(4)),
        "file.txt is not a directory"
    );
}

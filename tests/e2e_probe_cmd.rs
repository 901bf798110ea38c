//! `pk probe` end to end (issue 14): the real binary against real loopback servers: a pass, a
//! failure within the deadline, a wrong HTTP status, and a connection refused that later
//! accepts. Every wait is on a condition with a deadline.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{DEADLINE, Project};

fn project() -> Project {
    Project::new("services:\n  x:\n    command: [true]\n")
}

/// A loopback HTTP server answering every request with `status`, until the test ends.
fn http_server(status: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

/// A TCP socket bound to a loopback port but not listening: connecting to it is refused until
/// `listen` is called, and no other test can take the port meanwhile.
struct Reserved {
    fd: OwnedFd,
    port: u16,
}

impl Reserved {
    fn new() -> Reserved {
        // SAFETY: plain socket calls on a descriptor this function owns; the address structs
        // are fully initialised and their sizes passed along.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap();
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).unwrap();
            let bound = libc::bind(raw, (&raw const addr).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            libc::getsockname(raw, (&raw mut got).cast(), &raw mut got_len);
            Reserved {
                fd,
                port: u16::from_be(got.sin_port),
            }
        }
    }

    fn address(&self) -> String {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).to_string()
    }

    fn listen(&self) {
        // SAFETY: `listen` on a socket this value owns.
        let rc = unsafe { libc::listen(self.fd.as_raw_fd(), 16) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn a_listening_port_passes_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let out = project().pk(&["probe", "tcp", &address]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout(), format!("probe: tcp {address}: ok\n"));
}

#[test]
fn a_refused_port_fails_once_the_deadline_has_passed_naming_what_failed() {
    let reserved = Reserved::new();
    let address = reserved.address();
    let started = Instant::now();
    let out = project()
        .pk(&[
            "probe",
            "--wait",
            "--deadline",
            "1s",
            "--interval",
            "100ms",
            "--name",
            "db",
            "tcp",
            &address,
        ])
        .run();
    let took = started.elapsed();
    assert_eq!(out.code, 1);
    // The same words as pk's own `ready` deadline failure.
    assert_eq!(
        out.stderr,
        format!(
            "pk probe: waiting: tcp {address}: refused\npk probe: db not ready after 1s: tcp {address}: refused\n"
        )
    );
    assert!(
        took >= Duration::from_secs(1),
        "gave up after {took:?}, before the deadline"
    );
    assert!(took < DEADLINE, "took {took:?}");
    // Without --wait: one attempt, its reason.
    let once = project().pk(&["probe", "tcp", &address]).run();
    assert_eq!(once.code, 1);
    assert_eq!(once.stderr, format!("pk probe: tcp {address}: refused\n"));
}

#[test]
fn a_wrong_http_status_fails_and_an_accepted_one_passes() {
    let port = http_server("503 Service Unavailable");
    let url = format!("http://127.0.0.1:{port}/health");
    let out = project().pk(&["probe", "http", &url]).run();
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "pk probe: http 503\n");
    let wrong = project()
        .pk(&["probe", "--status", "200", "http", &url])
        .run();
    assert_eq!(wrong.code, 1);
    let accepted = project()
        .pk(&["probe", "--status", "503", "http", &url])
        .run();
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let ok = http_server("204 No Content");
    let out = project()
        .pk(&["probe", "http", &format!("http://127.0.0.1:{ok}/")])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Kills the probe if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_refused_connection_that_later_accepts_passes() {
    let reserved = Reserved::new();
    let address = reserved.address();
    #[expect(clippy::disallowed_methods, reason = "runs the binary under test")]
    let child = Command::new(env!("CARGO_BIN_EXE_pk"))
        .args([
            "probe",
            "--wait",
            "--deadline",
            "30s",
            "--interval",
            "50ms",
            "tcp",
            &address,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Listen only once pk has seen the refusal.
    let first = rx
        .recv_timeout(DEADLINE)
        .expect("pk probe reports its first failure");
    assert_eq!(first, format!("pk probe: waiting: tcp {address}: refused"));
    reserved.listen();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "pk probe did not pass once the port listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, format!("probe: tcp {address}: ok\n"));
}

#[test]
fn an_exec_check_runs_in_this_directory_and_reports_its_exit() {
    let p = project();
    let pass = p.pk(&["probe", "exec", "test -f pk.yaml"]).run();
    assert_eq!(pass.code, 0, "{}", pass.stderr);
    let fail = p.pk(&["probe", "exec", "--", "sh", "-c", "exit 3"]).run();
    assert_eq!(fail.code, 1);
    assert_eq!(fail.stderr, "pk probe: exec sh -c exit 3: exited 3\n");
}

#[test]
fn a_check_that_does_not_parse_is_a_usage_error() {
    let out = project()
        .pk(&["probe", "http", "https://example.com/"])
        .run();
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.stderr, @r"
    pk probe: `https://example.com/` uses https
      help: http probes speak plain http only; use `http://`
    ");
}

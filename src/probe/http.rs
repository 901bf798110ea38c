//! A plain HTTP/1.1 GET over tokio, enough for a health check (no client framework).

use std::fmt::Write as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GETs `http://host:port/path` with `headers` added; success is a status in `accepted`, or
/// 2xx/3xx when empty.
pub(super) async fn get(
    host: &str,
    port: u16,
    path: &str,
    accepted: &[u16],
    headers: &[(String, String)],
) -> Result<(), String> {
    let what = format!("http http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{what}: {}", super::short_io(&e)))?;
    let request = request(host, port, path, headers);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let code = parse_status(&head).ok_or_else(|| format!("{what}: not an HTTP response"))?;
    let ok = if accepted.is_empty() {
        (200..400).contains(&code)
    } else {
        accepted.contains(&code)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("http {code}"))
    }
}

/// The request: pk's own headers, then `headers` (a `Host` among them replaces pk's). Names
/// and values were checked at load (`config::values::http_header`): no CR/LF gets in.
fn request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let own_host = !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    let mut text = format!("GET {path} HTTP/1.1\r\n");
    if own_host {
        let _ = write!(text, "Host: {host}:{port}\r\n");
    }
    text.push_str("User-Agent: pk-probe\r\nAccept: */*\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    text.push_str("\r\n");
    text
}

/// The status code of an `HTTP/1.x NNN reason` status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_status, request};

    #[test]
    fn headers_follow_pk_s_own_and_host_can_be_replaced() {
        let plain = request("127.0.0.1", 80, "/h", &[]);
        assert_eq!(
            plain,
            "GET /h HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: pk-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let with = request(
            "127.0.0.1",
            80,
            "/",
            &[
                ("Host".into(), "example.test".into()),
                ("X-Token".into(), "s3cret".into()),
            ],
        );
        assert!(!with.contains("Host: 127.0.0.1"), "{with}");
        assert!(
            with.ends_with("Host: example.test\r\nX-Token: s3cret\r\n\r\n"),
            "{with}"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }
}

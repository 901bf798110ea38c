//! Parsers for pk.yaml's scalar mini-languages: durations, signals, conditions, probe targets.
//!
//! Each returns `Err(message, hint)` in plain words; the caller attaches the location.

use std::time::Duration;

use crate::vocab::{Condition, RestartPolicy, StopSignal, stop_signals};

/// `(message, hint)` for a value that does not parse.
pub(crate) type Problem = (String, Option<String>);

/// A human duration: `250ms`, `10s`, `1m30s`, `2h`.
pub fn duration(text: &str) -> Result<Duration, Problem> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err((
            format!("`{t}` has no unit"),
            Some(format!("add a unit, e.g. `{t}s` or `{t}ms`")),
        ));
    }
    let hint = || Some("write durations like `250ms`, `10s`, `1m30s` or `2h`".to_owned());
    let parsed: jiff::SignedDuration = t
        .parse()
        .map_err(|_| (format!("`{t}` is not a duration"), hint()))?;
    if parsed.is_negative() {
        return Err((format!("`{t}` is negative"), hint()));
    }
    parsed
        .try_into()
        .map_err(|_| (format!("`{t}` is out of range"), hint()))
}

/// `TERM`, `SIGTERM`, `term` → `StopSignal`.
pub fn signal(text: &str) -> Result<StopSignal, Problem> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(signal) = stop_signals().find(|s| s.name == name) {
        return Ok(signal);
    }
    let names: Vec<&str> = stop_signals().map(|s| s.name).collect();
    let hint = match super::diag::did_you_mean(name, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("use one of {}", names.join(", ")),
    };
    Err((format!("`{text}` is not a signal pk can send"), Some(hint)))
}

pub(crate) const CONDITIONS: &[&str] =
    &["started", "healthy", "completed", "completed_successfully"];

/// A `depends_on` condition; `service_*` and `process_*` spellings are accepted.
pub fn condition(text: &str) -> Result<Condition, Problem> {
    let bare = text
        .strip_prefix("service_")
        .or_else(|| text.strip_prefix("process_"))
        .unwrap_or(text);
    match bare {
        "started" => Ok(Condition::Started),
        "healthy" => Ok(Condition::Healthy),
        "completed" => Ok(Condition::Completed),
        "completed_successfully" => Ok(Condition::CompletedSuccessfully),
        _ => {
            let hint = match super::diag::did_you_mean(bare, CONDITIONS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of {}", CONDITIONS.join(", ")),
            };
            Err((
                format!("`{text}` is not a dependency condition"),
                Some(hint),
            ))
        }
    }
}

pub(crate) const POLICIES: &[&str] = &["no", "on-failure", "always"];

pub fn restart_policy(text: &str) -> Result<RestartPolicy, Problem> {
    match text {
        "no" | "false" => Ok(RestartPolicy::No),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "always" => Ok(RestartPolicy::Always),
        _ => {
            let hint = match super::diag::did_you_mean(text, POLICIES.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of {}", POLICIES.join(", ")),
            };
            Err((format!("`{text}` is not a restart policy"), Some(hint)))
        }
    }
}

/// A parsed `http://host:port/path` probe target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub fn http_url(text: &str) -> Result<HttpTarget, Problem> {
    let hint = || Some("write it like `http://127.0.0.1:8080/health`".to_owned());
    let Some(rest) = text.strip_prefix("http://") else {
        if text.starts_with("https://") {
            return Err((
                format!("`{text}` uses https"),
                Some("http probes speak plain http only; use `http://`".into()),
            ));
        }
        return Err((format!("`{text}` is not an http:// URL"), hint()));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let (host, port) =
        split_host_port(authority, Some(80)).map_err(|m| (format!("`{text}`: {m}"), hint()))?;
    Ok(HttpTarget { host, port, path })
}

/// One header of an http probe: a name of HTTP token characters and a value without control
/// characters (so a value cannot end the header line and smuggle another).
pub(crate) fn http_header(name: &str, value: &str) -> Result<(), Problem> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err((
            format!("`{name}` is not an HTTP header name"),
            Some("a header name is letters, digits and `-` (e.g. `Authorization`)".into()),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err((
            format!("the value of header `{name}` has a line break or a control character"),
            Some("a header value is one line of text".into()),
        ));
    }
    Ok(())
}

/// A `host:port` tcp probe target.
pub fn tcp_address(text: &str) -> Result<String, Problem> {
    split_host_port(text, None)
        .map(|_| text.to_owned())
        .map_err(|m| {
            (
                format!("`{text}`: {m}"),
                Some("write it like `127.0.0.1:5432` or `localhost:6379`".into()),
            )
        })
}

fn split_host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err("credentials in the address are not supported".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))?,
        (None, Some(d)) => d,
        (None, None) => return Err("the port is missing".into()),
    };
    Ok((host.to_owned(), port))
}

/// Service names become cgroup directory names: `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`.
/// The most copies `replicas:` (or `--scale`) may ask for: a bound on what one line can spawn.
pub(crate) const MAX_REPLICAS: u32 = 1000;

/// Stands for a copy's replica number in a service's strings until `plan::replicas` makes the
/// copies and writes each copy's number in its place (process-compose renders
/// `{{ .PC_REPLICA_NUM }}` once per replica). Private-use characters: no config has them.
pub(crate) const REPLICA_NUM_MARK: &str = "\u{F8FF}PC_REPLICA_NUM\u{F8FF}";

pub fn is_valid_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("2 minutes").unwrap(), Duration::from_secs(120));
        assert!(duration("10").unwrap_err().1.unwrap().contains("10s"));
        assert!(duration("-1s").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn urls() {
        let t = http_url("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/health?x=1")
        );
        assert_eq!(http_url("http://localhost").unwrap().port, 80);
        assert_eq!(http_url("http://[::1]:9/").unwrap().host, "::1");
        assert!(http_url("https://x/").is_err());
        assert!(http_url("http://x:99999/").is_err());
        assert!(tcp_address("localhost").is_err());
        assert!(tcp_address("localhost:5432").is_ok());
    }

    #[test]
    fn names_and_signals() {
        assert!(is_valid_service_name("api-2.v1_x"));
        assert!(!is_valid_service_name("-api"));
        assert!(is_valid_service_name("_pc_log"));
        assert!(!is_valid_service_name(".hidden"));
        assert!(!is_valid_service_name("a/b"));
        assert_eq!(signal("SIGINT").unwrap().name, "INT");
        assert_eq!(signal("term").unwrap().number, 15);
        assert!(signal("TREM").unwrap_err().1.unwrap().contains("TERM"));
    }
}

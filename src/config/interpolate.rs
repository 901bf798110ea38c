//! Compose-style `${VAR}` interpolation of YAML values (never keys).
//!
//! Grammar (compose-spec): `$$` is a literal `$`; `$NAME` and `${NAME}` with
//! `NAME = [_a-zA-Z][_a-zA-Z0-9]*`; `${NAME:-default}` (unset or empty), `${NAME-default}`
//! (unset), `${NAME:?message}` / `${NAME?message}` (error), `${NAME:+alt}` / `${NAME+alt}`
//! (alternative when set); defaults and messages nest and are only expanded when used. A `$`
//! followed by anything else stays as it is. Pure: never reads the process environment.
//!
//! Invariants: defaults nest at most `MAX_DEPTH` deep (deeper is an error, not a stack
//! overflow); each nesting level scans its text once, so evaluation is linear in the input
//! (at most `MAX_DEPTH` passes over any byte).

use std::collections::BTreeMap;

/// Result of interpolating one string.
#[derive(Debug, Default)]
pub struct Expanded {
    pub text: String,
    /// Variables that were unset and had no default (each becomes the empty string).
    pub unset: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolateError {
    /// `${VAR:?message}` / `${VAR?message}` hit.
    Required { name: String, message: String },
    /// A `${` that is not a supported form, or has no closing `}`.
    Invalid { text: String },
    /// Defaults nested deeper than `MAX_DEPTH`.
    TooDeep,
}

/// How deep `${A:-${B:-…}}` defaults may nest.
pub(crate) const MAX_DEPTH: usize = 32;

pub fn interpolate(
    input: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Expanded, InterpolateError> {
    let mut out = Expanded::default();
    expand_into(input, vars, &mut out, 0)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand_into(
    input: &str,
    vars: &BTreeMap<String, String>,
    out: &mut Expanded,
    depth: usize,
) -> Result<(), InterpolateError> {
    if depth > MAX_DEPTH {
        return Err(InterpolateError::TooDeep);
    }
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.text.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.text.push('$');
            rest = tail;
        } else if let Some(inner_start) = after.strip_prefix('{') {
            let close = matching_brace(inner_start).ok_or_else(|| InterpolateError::Invalid {
                text: rest[pos..].to_owned(),
            })?;
            let inner = &inner_start[..close];
            expand_braced(inner, vars, out, depth)?;
            rest = &inner_start[close + 1..];
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            let name = &after[..end];
            lookup(name, vars, out);
            rest = &after[end..];
        } else {
            out.text.push('$');
            rest = after;
        }
    }
    out.text.push_str(rest);
    Ok(())
}

/// Index of the `}` closing a `${`, counting nested `${ … }`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, vars: &BTreeMap<String, String>, out: &mut Expanded) {
    match vars.get(name) {
        Some(v) => out.text.push_str(v),
        None => {
            if !out.unset.iter().any(|n| n == name) {
                out.unset.push(name.to_owned());
            }
        }
    }
}

fn expand_braced(
    inner: &str,
    vars: &BTreeMap<String, String>,
    out: &mut Expanded,
    depth: usize,
) -> Result<(), InterpolateError> {
    let invalid = || InterpolateError::Invalid {
        text: format!("${{{inner}}}"),
    };
    if !inner.starts_with(is_name_start) {
        return Err(invalid());
    }
    let end = inner.find(|c| !is_name_char(c)).unwrap_or(inner.len());
    let (name, op) = inner.split_at(end);
    if op.is_empty() {
        lookup(name, vars, out);
        return Ok(());
    }
    let value = vars.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let (colon, op) = match op.strip_prefix(':') {
        Some(op) => (true, op),
        None => (false, op),
    };
    let present = if colon { non_empty } else { set };
    let mut chars = op.chars();
    let operator = chars.next().ok_or_else(invalid)?;
    let arg = chars.as_str();
    match operator {
        '-' | '?' if present => out.text.push_str(value.map_or("", String::as_str)),
        '-' => expand_into(arg, vars, out, depth + 1)?,
        '+' if present => expand_into(arg, vars, out, depth + 1)?,
        '+' => {}
        '?' => {
            let mut msg = Expanded::default();
            expand_into(arg, vars, &mut msg, depth + 1)?;
            return Err(InterpolateError::Required {
                name: name.to_owned(),
                message: msg.text,
            });
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("A", "a"), ("EMPTY", ""), ("B", "b")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    fn ok(s: &str) -> String {
        interpolate(s, &vars()).unwrap().text
    }

    #[test]
    fn operators() {
        assert_eq!(ok("$A-${B}"), "a-b");
        assert_eq!(ok("${EMPTY:-d}|${EMPTY-d}|${NOPE-d}"), "d||d");
        assert_eq!(ok("${NOPE:-${B:-x}}"), "b");
        assert_eq!(ok("${A:+alt}${EMPTY:+alt}${EMPTY+alt}"), "altalt");
        assert_eq!(ok("$$A $1 $ a$"), "$A $1 $ a$");
        assert_eq!(ok("${A:?m}"), "a");
    }

    #[test]
    fn errors_and_warnings() {
        let e = interpolate("${NOPE:?need $A}", &vars()).unwrap_err();
        assert_eq!(
            e,
            InterpolateError::Required {
                name: "NOPE".into(),
                message: "need a".into()
            }
        );
        assert!(matches!(
            interpolate("${A/x/y}", &vars()),
            Err(InterpolateError::Invalid { .. })
        ));
        assert!(matches!(
            interpolate("${A", &vars()),
            Err(InterpolateError::Invalid { .. })
        ));
        let w = interpolate("$NOPE ${NOPE} ${X:-$Y}", &vars()).unwrap();
        assert_eq!(w.unset, vec!["NOPE".to_owned(), "Y".to_owned()]);
        assert_eq!(w.text, "  ");
    }

    fn nested(levels: usize) -> String {
        let mut s = "${X:-".repeat(levels);
        s.push('d');
        s.push_str(&"}".repeat(levels));
        s
    }

    #[test]
    fn nesting_is_limited_and_evaluation_is_linear() {
        assert_eq!(ok(&nested(MAX_DEPTH)), "d");
        assert_eq!(
            interpolate(&nested(MAX_DEPTH + 1), &vars()).unwrap_err(),
            InterpolateError::TooDeep
        );
        // 30,000 levels overflowed the stack (SIGABRT); now an error after MAX_DEPTH levels,
        // each of which scans the text once.
        assert_eq!(
            interpolate(&nested(30_000), &vars()).unwrap_err(),
            InterpolateError::TooDeep
        );
        let wide = nested(MAX_DEPTH).repeat(2_000);
        assert_eq!(interpolate(&wide, &vars()).unwrap().text.len(), 2_000);
    }

    #[test]
    fn unused_deep_defaults_cost_one_scan() {
        let mut s = "${A:-".to_string();
        s.push_str(&nested(50_000));
        s.push('}');
        let w = interpolate(&s, &vars()).unwrap();
        assert_eq!(w.text, "a");
    }
}

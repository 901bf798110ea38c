//! The subset of Go templates that process-compose files use: `{{ .NAME }}` (and `{{.NAME}}`)
//! replaced by a `vars` value. Any other action (`{{ if }}`, pipes, functions, `{{ $x }}`) and
//! any name without a value is an error: pk does not guess what a template means.

use std::collections::BTreeMap;

/// Renders `text`; `Err` carries the byte range (in `text`) of the action that cannot be
/// rendered and why.
pub(super) fn render(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, (std::ops::Range<usize>, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{").map(|p| p + rest) {
        out.push_str(&text[rest..open]);
        let Some(close) = text[open..].find("}}").map(|p| p + open) else {
            return Err((open..text.len(), "`{{` is never closed by `}}`".to_owned()));
        };
        let range = open..close + 2;
        let mut inner = &text[open + 2..close];
        // `{{-` / `-}}` trim markers only trim whitespace around the action.
        inner = inner.strip_prefix('-').unwrap_or(inner);
        inner = inner.strip_suffix('-').unwrap_or(inner);
        let inner = inner.trim();
        let Some(name) = inner
            .strip_prefix('.')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()))
        else {
            return Err((
                range,
                format!(
                    "`{}` is a template construct pk does not support",
                    &text[open..close + 2]
                ),
            ));
        };
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => return Err((range, format!("`{name}` is not in `vars`"))),
        }
        rest = close + 2;
    }
    out.push_str(&text[rest..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset() {
        let vars: BTreeMap<String, String> = [("HOME_DIR".to_owned(), "/srv".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            render("cd {{ .HOME_DIR }}/a && {{.HOME_DIR}}", &vars).unwrap(),
            "cd /srv/a && /srv"
        );
        assert_eq!(render("no template", &vars).unwrap(), "no template");
        assert!(render("{{ .NOPE }}", &vars).unwrap_err().1.contains("NOPE"));
        assert!(render("{{ if .X }}a{{ end }}", &vars).is_err());
        assert!(render("{{ .HOME_DIR | upper }}", &vars).is_err());
        assert!(render("{{ .HOME_DIR", &vars).is_err());
    }
}

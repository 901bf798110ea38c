//! Turns one raw output line into plain text plus style runs: ANSI SGR colours are kept,
//! every other escape or control sequence is dropped, `\r` rewrites collapse to the last one.
//!
//! `neutralise` does the same for text that goes to a terminal as bytes (`pk logs`, `pk up
//! --plain` on a TTY): SGR colours stay, every other escape (OSC 52 clipboard, OSC 0 title,
//! screen clears, cursor moves) and control character is dropped.
//!
//! Invariants: pure and bounded — input is one complete line (at most `logs::MAX_LINE` bytes);
//! an escape longer than `MAX_ESCAPE` bytes is skipped, never interpreted or shown; the text never
//! contains control characters (tabs become spaces).

use ratatui::style::{Color, Modifier, Style};

/// Longest escape sequence parsed; longer ones are dropped (mprocs#225: unbounded escapes).
pub(super) const MAX_ESCAPE: usize = 64;
const TAB_WIDTH: usize = 4;

/// Style of `text[previous end .. end]`; runs cover the text in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub end: u32,
    pub style: Style,
}

/// Parses one line (without its `\n`) into plain text and style runs. Runs with the default
/// style at the end are omitted, so an uncoloured line has no runs at all.
pub(super) fn parse_line(raw: &[u8]) -> (String, Vec<Run>) {
    let raw = collapse_cr(raw);
    let text_in = String::from_utf8_lossy(raw);
    let mut text = String::with_capacity(text_in.len());
    let mut runs: Vec<Run> = Vec::new();
    let mut style = Style::default();
    let mut chars = text_in.char_indices().peekable();
    let bytes = text_in.as_bytes();
    while let Some((i, c)) = chars.next() {
        match c {
            '\x1b' => {
                let (consumed, sgr) = escape(&bytes[i..]);
                if let Some(params) = sgr {
                    let next = apply_sgr(style, params);
                    if next != style {
                        close_run(&mut runs, &text, style);
                        style = next;
                    }
                }
                // Skip the rest of the sequence (all ASCII, so char = byte).
                for _ in 1..consumed {
                    chars.next();
                }
            }
            '\t' => {
                let col = text.chars().count();
                for _ in 0..TAB_WIDTH - col % TAB_WIDTH {
                    text.push(' ');
                }
            }
            c if c.is_control() => {}
            c => text.push(c),
        }
    }
    close_run(&mut runs, &text, style);
    // A trailing run in the default style carries no information.
    if runs.last().is_some_and(|r| r.style == Style::default()) {
        runs.pop();
    }
    (text, runs)
}

/// Appends `line` (one line, without its `\n`) to `out` with every escape sequence except SGR
/// colours dropped, control characters other than tab dropped, `\r` rewrites collapsed to the
/// last one (as the dashboard shows it) and invalid UTF-8 replaced: safe to write to a
/// terminal, colours kept.
pub(crate) fn neutralise(line: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(collapse_cr(line));
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = text[i..].chars().next().expect("i is on a char boundary");
        match c {
            '\x1b' => {
                let (consumed, sgr) = escape(&bytes[i..]);
                if sgr.is_some() {
                    out.extend_from_slice(&bytes[i..i + consumed]);
                }
                i += consumed;
                continue;
            }
            '\t' => out.push(b'\t'),
            c if c.is_control() => {}
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
        i += c.len_utf8();
    }
}

/// What remains visible after carriage-return rewrites: the text after the last `\r` that is
/// followed by something (a trailing `\r`, as in CRLF, is ignored).
fn collapse_cr(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match raw.iter().rposition(|&b| b == b'\r') {
        Some(i) => &raw[i + 1..],
        None => raw,
    }
}

fn close_run(runs: &mut Vec<Run>, text: &str, style: Style) {
    let end = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let start = runs.last().map_or(0, |r| r.end);
    if end > start {
        runs.push(Run { end, style });
    }
}

/// Length of the escape sequence at the start of `s` (which begins with ESC) and, for an SGR
/// (`ESC [ … m`) no longer than `MAX_ESCAPE`, its parameter bytes. Longer sequences are
/// skipped whole without being interpreted.
fn escape(s: &[u8]) -> (usize, Option<&[u8]>) {
    match s.get(1) {
        Some(b'[') => {
            for (i, &b) in s.iter().enumerate().skip(2) {
                if (0x40..=0x7e).contains(&b) {
                    let sgr = (b == b'm' && i < MAX_ESCAPE).then(|| &s[2..i]);
                    return (i + 1, sgr);
                }
                if !(0x20..=0x3f).contains(&b) {
                    // Not a CSI byte: the sequence is malformed; drop what was read.
                    return (i, None);
                }
            }
            (s.len(), None)
        }
        Some(b']' | b'P' | b'_' | b'^') => {
            // OSC/DCS/APC/PM: up to BEL or ST (ESC \).
            for i in 2..s.len() {
                if s[i] == 0x07 {
                    return (i + 1, None);
                }
                if s[i] == 0x1b {
                    return (
                        if s.get(i + 1) == Some(&b'\\') {
                            i + 2
                        } else {
                            i
                        },
                        None,
                    );
                }
            }
            (s.len(), None)
        }
        // ESC, intermediates (`(`, `#`, …), one final byte: charset and similar.
        Some(0x20..=0x2f) => {
            let end = s[1..]
                .iter()
                .position(|b| !(0x20..=0x2f).contains(b))
                .map_or(s.len(), |i| i + 2);
            (end.min(s.len()), None)
        }
        Some(b) if b.is_ascii() && !b.is_ascii_control() => (2, None),
        _ => (1, None),
    }
}

fn apply_sgr(mut style: Style, params: &[u8]) -> Style {
    let mut nums = params
        .split(|&b| b == b';' || b == b':')
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(0)
        })
        .peekable();
    if params.is_empty() {
        return Style::default();
    }
    while let Some(n) = nums.next() {
        style = match n {
            0 => Style::default(),
            1 => style.add_modifier(Modifier::BOLD),
            2 => style.add_modifier(Modifier::DIM),
            3 => style.add_modifier(Modifier::ITALIC),
            4 => style.add_modifier(Modifier::UNDERLINED),
            5 | 6 => style.add_modifier(Modifier::SLOW_BLINK),
            7 => style.add_modifier(Modifier::REVERSED),
            8 => style.add_modifier(Modifier::HIDDEN),
            9 => style.add_modifier(Modifier::CROSSED_OUT),
            22 => style.remove_modifier(Modifier::BOLD | Modifier::DIM),
            23 => style.remove_modifier(Modifier::ITALIC),
            24 => style.remove_modifier(Modifier::UNDERLINED),
            25 => style.remove_modifier(Modifier::SLOW_BLINK),
            27 => style.remove_modifier(Modifier::REVERSED),
            28 => style.remove_modifier(Modifier::HIDDEN),
            29 => style.remove_modifier(Modifier::CROSSED_OUT),
            30..=37 => style.fg(Color::Indexed(u8::try_from(n - 30).unwrap_or(7))),
            39 => Style { fg: None, ..style },
            40..=47 => style.bg(Color::Indexed(u8::try_from(n - 40).unwrap_or(0))),
            49 => Style { bg: None, ..style },
            90..=97 => style.fg(Color::Indexed(u8::try_from(n - 90 + 8).unwrap_or(15))),
            100..=107 => style.bg(Color::Indexed(u8::try_from(n - 100 + 8).unwrap_or(0))),
            38 | 48 => match extended_color(&mut nums) {
                Some(c) if n == 38 => style.fg(c),
                Some(c) => style.bg(c),
                None => style,
            },
            _ => style,
        };
    }
    style
}

/// `5;N` (256 colours) or `2;R;G;B` after a 38/48.
fn extended_color(nums: &mut impl Iterator<Item = u16>) -> Option<Color> {
    let byte = |n: Option<u16>| n.and_then(|n| u8::try_from(n).ok());
    match nums.next()? {
        5 => byte(nums.next()).map(Color::Indexed),
        2 => Some(Color::Rgb(
            byte(nums.next())?,
            byte(nums.next())?,
            byte(nums.next())?,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_no_runs() {
        assert_eq!(parse_line(b"hello world"), ("hello world".into(), vec![]));
    }

    #[test]
    fn sgr_colours_become_runs() {
        let (text, runs) = parse_line(b"a\x1b[31mred\x1b[0m b \x1b[1;38;5;200mx");
        assert_eq!(text, "ared b x");
        assert_eq!(
            runs,
            vec![
                Run {
                    end: 1,
                    style: Style::default()
                },
                Run {
                    end: 4,
                    style: Style::default().fg(Color::Indexed(1))
                },
                Run {
                    end: 7,
                    style: Style::default()
                },
                Run {
                    end: 8,
                    style: Style::default()
                        .add_modifier(Modifier::BOLD)
                        .fg(Color::Indexed(200))
                },
            ]
        );
    }

    #[test]
    fn carriage_return_keeps_the_last_rewrite() {
        assert_eq!(parse_line(b"10%\r50%\r100% done\r").0, "100% done");
    }

    #[test]
    fn other_escapes_and_controls_are_dropped() {
        let (text, runs) = parse_line(b"\x1b[2K\x1b]0;title\x07ok\x08\x1b(B!\x1b[?25l");
        assert_eq!(text, "ok!");
        assert!(runs.is_empty());
    }

    #[test]
    fn an_endless_escape_is_cut() {
        let mut raw = b"\x1b[".to_vec();
        raw.extend(std::iter::repeat_n(b'1', 1000));
        raw.extend_from_slice(b"mtext");
        let (text, runs) = parse_line(&raw);
        assert_eq!(text, "text");
        assert!(runs.is_empty(), "an over-long SGR is not interpreted");
    }

    #[test]
    fn neutralise_keeps_colours_and_drops_every_other_escape() {
        let mut out = Vec::new();
        neutralise(
            b"\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x1b\\\x1b[2J\x1b[H\x1b[31mred\x1b[0m\x9b\x07\x08\tok\xc2\x9b1m\xff",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\x1b[31mred\x1b[0m\u{fffd}\tok1m\u{fffd}"
        );
        let mut out = Vec::new();
        neutralise(b"10%\r100% done\r", &mut out);
        assert_eq!(out, b"100% done");
    }

    #[test]
    fn tabs_expand_and_invalid_utf8_is_replaced() {
        assert_eq!(parse_line(b"a\tb\xff").0, "a   b\u{fffd}");
    }
}

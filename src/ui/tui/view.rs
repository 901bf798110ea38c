//! Pure view functions: (app state, snapshot, log history, usage, now) → a ratatui frame.
//!
//! Invariants: no I/O and no clock — time comes in as `now_ms` — so every screen is
//! snapshot-testable with `TestBackend`; only the visible window of log lines is laid out.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table};
use unicode_width::UnicodeWidthChar;

use super::app::{App, PromptKind};
use super::history::{LineKind, LogLine, LogStore};
use super::logview::{Query, Scope};
use crate::engine::{ServiceSnapshot, Snapshot};
use crate::metrics::Usage;
use crate::plan::{CopyPosition, copy_positions};
use crate::vocab::State;

const PK_COLOUR: Color = Color::Indexed(250);
const TIMESTAMP_WIDTH: usize = 13;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Areas {
    /// Header row plus one row per visible service.
    pub table: Rect,
    /// The log pane's title line.
    pub title: Rect,
    pub logs: Rect,
    pub status: Rect,
}

/// Splits the screen: the service table on top (at most 2/5 of the height), a title line, the
/// logs, and a status line at the bottom.
pub(super) fn areas(size: Rect, services: usize) -> Areas {
    let status_h = u16::from(size.height > 0);
    let body = size.height - status_h;
    let wanted = u16::try_from(services + 1).unwrap_or(u16::MAX);
    let table_h = if body < 6 {
        wanted.min(body / 2)
    } else {
        wanted.min((body * 2 / 5).max(2))
    };
    let title_h = u16::from(body > table_h);
    let logs_h = body - table_h - title_h;
    let row = |y: u16, h: u16| Rect::new(size.x, size.y + y, size.width, h);
    Areas {
        table: row(0, table_h),
        title: row(table_h, title_h),
        logs: row(table_h + title_h, logs_h),
        status: row(body, status_h),
    }
}

/// The first service shown in a table `height` rows high (one is the header) so that
/// `selected` is visible.
pub(super) fn table_offset(selected: usize, height: u16) -> usize {
    let rows = usize::from(height.saturating_sub(1)).max(1);
    selected.saturating_sub(rows - 1)
}

/// A service's colour: the plain printer's (`vocab::service_colour`).
pub(super) fn service_colour(index: usize) -> Color {
    Color::Indexed(crate::vocab::service_colour(index))
}

/// Draws the whole dashboard.
pub fn draw(
    frame: &mut Frame<'_>,
    app: &App,
    store: &LogStore,
    snap: &Snapshot,
    usage: &[Option<Usage>],
    now_ms: u64,
) {
    let size = frame.area();
    let areas = areas(size, app.names.len());
    draw_table(frame, areas.table, app, snap, usage, now_ms);
    draw_logs(frame, areas, app, store);
    draw_status(frame, areas.status, app, snap);
    if app.help {
        draw_help(frame, size);
    }
}

fn state_look(state: State) -> (&'static str, Style) {
    let s = Style::default();
    match state {
        State::Pending => ("◌", s.fg(Color::Gray)),
        State::Starting => ("◐", s.fg(Color::Yellow)),
        State::Running => ("●", s.fg(Color::Green)),
        State::Healthy => ("●", s.fg(Color::Green).add_modifier(Modifier::BOLD)),
        State::Completed => ("✔", s.fg(Color::Green)),
        State::Exited => ("■", s.fg(Color::Gray)),
        State::Restarting => ("↻", s.fg(Color::Yellow)),
        State::Stopping => ("◍", s.fg(Color::Magenta)),
        State::Stopped => ("■", s.fg(Color::DarkGray)),
        State::Crashed => ("✖", s.fg(Color::Red).add_modifier(Modifier::BOLD)),
        State::Failed | State::TimedOut => ("✖", s.fg(Color::Red)),
        State::Skipped => ("⊘", s.fg(Color::DarkGray)),
        State::Inactive => ("·", s.fg(Color::DarkGray)),
    }
}

/// `12s`, `3m04s`, `2h05m`.
pub(super) fn fmt_uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// `3.2s` for a countdown.
fn fmt_countdown(ms: u64) -> String {
    if ms < 60_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        fmt_uptime(ms)
    }
}

pub(super) fn fmt_bytes(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a rounded figure for display")]
    let b = bytes as f64;
    if bytes < 1024 * 1024 {
        format!("{:.0}K", b / 1024.0)
    } else if bytes < 1024 * 1024 * 1024 {
        format!("{:.1}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// What a service waits for, why it failed, or how long until something happens.
fn note(s: &ServiceSnapshot, now_ms: u64) -> String {
    match s.state {
        State::Pending => s
            .waiting_for
            .as_ref()
            .map(|w| format!("waiting for {w}"))
            .unwrap_or_default(),
        State::Restarting => s
            .restart_at_ms
            .map(|at| format!("in {}", fmt_countdown(at.saturating_sub(now_ms))))
            .unwrap_or_default(),
        State::Stopping => match s.kill_at_ms {
            Some(at) if at > now_ms => format!("grace {} left", fmt_countdown(at - now_ms)),
            Some(_) => "killing".to_owned(),
            None => String::new(),
        },
        _ => s.reason.clone().unwrap_or_default(),
    }
}

/// Table columns from most to least important; narrow terminals drop from the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Pid,
    Uptime,
    Restarts,
    Cpu,
    Mem,
    Exit,
    Health,
}

const OPTIONAL: [(Column, &str, u16); 7] = [
    (Column::Pid, "PID", 7),
    (Column::Uptime, "UP", 6),
    (Column::Restarts, "↻", 3),
    (Column::Cpu, "CPU", 6),
    (Column::Mem, "MEM", 6),
    (Column::Exit, "EXIT", 17),
    (Column::Health, "HEALTH", 8),
];
const STATE_WIDTH: u16 = 12;
/// Room left for the note column before optional columns are dropped.
const NOTE_MIN: u16 = 12;

fn draw_table(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    snap: &Snapshot,
    usage: &[Option<Usage>],
    now_ms: u64,
) {
    if area.height == 0 {
        return;
    }
    // Copies of a replicated service are grouped: `┌ web-0`, `├ web-1`, `└ web-2`.
    let copies = copy_positions(&app.names);
    let tree = if copies.iter().any(Option::is_some) {
        2
    } else {
        0
    };
    let name_w = u16::try_from(app.names.iter().map(String::len).max().unwrap_or(4))
        .unwrap_or(20)
        .clamp(4, 24)
        + 2
        + tree;
    let mut budget = area.width.saturating_sub(name_w + STATE_WIDTH + NOTE_MIN);
    let mut columns = Vec::new();
    for &(col, title, width) in &OPTIONAL {
        if budget < width + 1 {
            break;
        }
        budget -= width + 1;
        columns.push((col, title, width));
    }
    let mut widths = vec![Constraint::Length(name_w), Constraint::Length(STATE_WIDTH)];
    widths.extend(columns.iter().map(|&(_, _, w)| Constraint::Length(w)));
    widths.push(Constraint::Fill(1));
    let mut header = vec!["  NAME".to_owned(), "STATE".to_owned()];
    header.extend(columns.iter().map(|&(_, t, _)| t.to_owned()));
    header.push(String::new());
    let header = Row::new(header)
        .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let first = table_offset(app.selected, area.height);
    let rows = snap
        .services
        .iter()
        .enumerate()
        .skip(first)
        .take(usize::from(area.height.saturating_sub(1)))
        .map(|(i, s)| {
            let selected = i == app.selected && !app.merged;
            let (symbol, look) = state_look(s.state);
            let marker = if selected { "▶ " } else { "  " };
            let branch = match copies.get(i).copied().flatten() {
                Some(CopyPosition::First) => "┌ ",
                Some(CopyPosition::Middle) => "├ ",
                Some(CopyPosition::Last) => "└ ",
                None if tree > 0 => "  ",
                None => "",
            };
            let mut cells = vec![
                Line::from(vec![
                    Span::raw(marker),
                    Span::styled(branch, Style::default().fg(Color::DarkGray)),
                    Span::styled(s.name.clone(), Style::default().fg(service_colour(i))),
                ]),
                Line::styled(format!("{symbol} {}", s.state), look),
            ];
            let u = usage.get(i).copied().flatten();
            for &(col, _, _) in &columns {
                let text = match col {
                    Column::Pid => s.pids.first().map(ToString::to_string).unwrap_or_default(),
                    Column::Uptime => s
                        .started_at_ms
                        .map(|t| fmt_uptime(now_ms.saturating_sub(t)))
                        .unwrap_or_default(),
                    Column::Restarts => s.restarts.to_string(),
                    Column::Cpu => u
                        .map(|u| format!("{:.1}%", u.cpu_percent))
                        .unwrap_or_default(),
                    Column::Mem => u.map(|u| fmt_bytes(u.rss_bytes)).unwrap_or_default(),
                    Column::Exit => s.last_exit.clone().unwrap_or_default(),
                    Column::Health => s.health.map(|h| h.to_string()).unwrap_or_default(),
                };
                cells.push(Line::raw(text));
            }
            cells.push(Line::styled(
                note(s, now_ms),
                Style::default().fg(Color::Gray),
            ));
            let row = Row::new(cells);
            if selected {
                row.style(Style::default().bg(Color::Indexed(236)))
            } else {
                row
            }
        });
    let table = Table::new(rows, widths).header(header).column_spacing(1);
    frame.render_widget(table, area);
}

/// How log lines are laid out in a pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineFormat {
    pub timestamps: bool,
    /// Merged view: the width service names are padded to.
    pub name_width: Option<usize>,
    pub wrap: bool,
    pub width: usize,
    pub utc_offset_s: i32,
}

impl LineFormat {
    fn prefix_width(&self) -> usize {
        let ts = if self.timestamps { TIMESTAMP_WIDTH } else { 0 };
        ts + self.name_width.map_or(0, |w| w + 3)
    }

    /// Screen rows a line takes.
    pub(crate) fn rows(&self, line: &LogLine) -> usize {
        if !self.wrap {
            return 1;
        }
        let mut rows = 1;
        let mut col = self.prefix_width();
        for c in line.text.chars() {
            let w = c.width().unwrap_or(0);
            if col + w > self.width && col > 0 {
                rows += 1;
                col = 0;
            }
            col += w;
        }
        rows
    }

    /// `HH:MM:SS.mmm ` in the local offset.
    fn timestamp(&self, ts_ms: u64) -> String {
        let day = 86_400_000_i64;
        let local = i64::try_from(ts_ms).unwrap_or(0) + i64::from(self.utc_offset_s) * 1000;
        let t = local.rem_euclid(day);
        format!(
            "{:02}:{:02}:{:02}.{:03} ",
            t / 3_600_000,
            t / 60_000 % 60,
            t / 1000 % 60,
            t % 1000
        )
    }

    /// The screen rows of one line: prefix, styled text, search matches highlighted.
    pub(crate) fn render(
        &self,
        line: &LogLine,
        names: &[String],
        search: Option<&Query>,
        current: bool,
    ) -> Vec<Line<'static>> {
        let mut spans: Vec<Span<'static>> = Vec::new();
        if self.timestamps {
            spans.push(Span::styled(
                self.timestamp(line.ts_ms),
                Style::default().fg(Color::DarkGray),
            ));
        }
        if let Some(w) = self.name_width {
            let (name, colour) = names.get(line.source).map_or(("pk", PK_COLOUR), |n| {
                (n.as_str(), service_colour(line.source))
            });
            spans.push(Span::styled(
                format!("{name:<w$} │ "),
                Style::default().fg(colour),
            ));
        }
        let base = match line.kind {
            LineKind::Notice => Style::default()
                .fg(Color::Gray)
                .add_modifier(Modifier::DIM | Modifier::ITALIC),
            LineKind::Stdout | LineKind::Stderr => Style::default(),
        };
        let hits: Vec<std::ops::Range<usize>> = search
            .map(|q| q.find_iter(&line.text).collect())
            .unwrap_or_default();
        let hit_style = if current {
            Style::default().bg(Color::LightRed).fg(Color::Black)
        } else {
            Style::default().bg(Color::Yellow).fg(Color::Black)
        };
        // Cut the text at every run end and match boundary.
        let mut cuts: Vec<usize> = line.runs.iter().map(|r| r.end as usize).collect();
        cuts.extend(hits.iter().flat_map(|h| [h.start, h.end]));
        cuts.push(line.text.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = 0;
        for end in cuts {
            if end <= start {
                continue;
            }
            let run_style = line
                .runs
                .iter()
                .find(|r| r.end as usize >= end)
                .map_or(Style::default(), |r| r.style);
            let mut style = base.patch(run_style);
            if hits.iter().any(|h| h.start <= start && end <= h.end) {
                style = style.patch(hit_style);
            }
            spans.push(Span::styled(line.text[start..end].to_owned(), style));
            start = end;
        }
        if self.wrap {
            wrap_spans(spans, self.width)
        } else {
            vec![Line::from(spans)]
        }
    }
}

/// Splits spans into rows at most `width` columns wide (by character, no word breaking).
fn wrap_spans(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    let mut rows = vec![Vec::new()];
    let mut col = 0;
    for span in spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if col + w > width && col > 0 {
                let row = rows.last_mut().expect("never empty");
                row.push(Span::styled(std::mem::take(&mut piece), span.style));
                rows.push(Vec::new());
                col = 0;
            }
            piece.push(c);
            col += w;
        }
        if !piece.is_empty() {
            rows.last_mut()
                .expect("never empty")
                .push(Span::styled(piece, span.style));
        }
    }
    rows.into_iter().map(Line::from).collect()
}

fn draw_logs(frame: &mut Frame<'_>, areas: Areas, app: &App, store: &LogStore) {
    let view = app.log_view(store);
    let fmt = app.line_format(areas.logs.width);
    let window = view.window(app.top, usize::from(areas.logs.height), |l| fmt.rows(l));
    if areas.title.height > 0 {
        frame.render_widget(
            Paragraph::new(title_line(app, view.dropped(), window.at_bottom)),
            areas.title,
        );
    }
    let mut rows: Vec<Line<'static>> = Vec::new();
    for line in &window.lines {
        let current = app.current_match == Some(line.seq);
        rows.extend(fmt.render(line, &app.names, app.search.as_ref(), current));
    }
    let rows: Vec<Line<'static>> = rows
        .into_iter()
        .skip(window.skip_rows)
        .take(usize::from(areas.logs.height))
        .collect();
    if rows.is_empty() {
        let empty = if app.filter.is_some() {
            "(no line matches the filter)"
        } else {
            "(no output yet)"
        };
        frame.render_widget(
            Paragraph::new(Span::styled(empty, Style::default().fg(Color::DarkGray))),
            areas.logs,
        );
    } else {
        frame.render_widget(Paragraph::new(rows), areas.logs);
    }
}

fn title_line(app: &App, dropped: u64, at_bottom: bool) -> Line<'static> {
    let rule = Style::default().fg(Color::DarkGray);
    let mut spans = vec![Span::styled("── ", rule)];
    match app.scope() {
        Scope::Merged => spans.push(Span::styled(
            "all services",
            Style::default().add_modifier(Modifier::BOLD),
        )),
        Scope::Service(i) => spans.push(Span::styled(
            app.names[i].clone(),
            Style::default()
                .fg(service_colour(i))
                .add_modifier(Modifier::BOLD),
        )),
    }
    let mut flags = Vec::new();
    flags.push(if app.top.is_none() {
        "follow".to_owned()
    } else if at_bottom {
        "end".to_owned()
    } else {
        "scrolled (G: follow)".to_owned()
    });
    if app.wrap {
        flags.push("wrap".to_owned());
    }
    if let Some(f) = &app.filter {
        flags.push(format!("filter \"{}\"", f.as_str()));
    }
    if let Some(s) = &app.search {
        flags.push(format!("search \"{}\"", s.as_str()));
    }
    if dropped > 0 {
        flags.push(format!("{} older lines dropped", group_digits(dropped)));
    }
    for flag in flags {
        spans.push(Span::styled(" ─ ", rule));
        spans.push(Span::raw(flag));
    }
    spans.push(Span::styled(format!(" {}", "─".repeat(300)), rule));
    Line::from(spans)
}

/// `12345678` → `12,345,678`.
pub(super) fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn draw_status(frame: &mut Frame<'_>, area: Rect, app: &App, snap: &Snapshot) {
    if area.height == 0 {
        return;
    }
    if let Some(prompt) = &app.prompt {
        let label = match prompt.kind {
            PromptKind::Search => "/",
            PromptKind::Filter => "filter: ",
        };
        let line = Line::from(vec![
            Span::styled(label, Style::default().fg(Color::Yellow)),
            Span::raw(prompt.text.clone()),
            Span::styled("▏", Style::default().fg(Color::Yellow)),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let mut spans = vec![Span::styled(
        format!(" {} ", app.stack),
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
    )];
    if snap.shutting_down {
        let text = if app.interrupts >= 2 {
            " killing everything "
        } else {
            " stopping (Ctrl-C again: kill all) "
        };
        spans.push(Span::styled(
            text,
            Style::default().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    // Counts by state, spelled out when the line has room, else symbols only.
    let counts: Vec<(State, usize)> = State::ALL
        .into_iter()
        .map(|state| {
            (
                state,
                snap.services.iter().filter(|s| s.state == state).count(),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    let long: usize = counts
        .iter()
        .map(|(s, n)| s.label().len() + n.to_string().len() + 4)
        .sum();
    let spelled = long + app.stack.len() + 80 <= usize::from(area.width);
    for (state, n) in counts {
        let (symbol, look) = state_look(state);
        spans.push(Span::raw(" "));
        let text = if spelled {
            format!("{symbol} {n} {state}")
        } else {
            format!("{symbol}{n}")
        };
        spans.push(Span::styled(text, look));
    }
    spans.push(Span::styled(
        format!(" │ {} │ ", app.containment),
        Style::default().fg(Color::DarkGray),
    ));
    match &app.message {
        Some(m) => spans.push(Span::styled(m.clone(), Style::default().fg(Color::Yellow))),
        None => spans.push(Span::styled(
            "?:help q:quit r:restart x:stop s:start m:merged /:search f:filter",
            Style::default().fg(Color::Gray),
        )),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Every key, as the help overlay lists it.
pub(super) const KEYS: [(&str, &str); 22] = [
    ("↑ ↓  j k", "select a service"),
    ("click", "select a service"),
    ("Tab  m", "merged view of all services on/off"),
    ("PgUp PgDn  C-b C-f", "scroll a page"),
    ("C-u C-d", "scroll half a page"),
    ("S-↑ S-↓  K J  C-y C-e", "scroll a line"),
    ("wheel", "scroll (over the list: select)"),
    ("g Home", "go to the oldest line"),
    ("G End", "go to the newest line and follow"),
    ("F", "follow on/off"),
    ("w", "wrap long lines on/off"),
    ("t", "timestamps on/off"),
    ("/", "search (Enter: newest match)"),
    ("n N", "next (newer) / previous (older) match"),
    ("f", "filter: show only matching lines"),
    ("Esc", "clear search and filter"),
    ("r  R", "restart the service (R: and its dependents)"),
    ("x", "stop the service (dependents first)"),
    ("s", "start the service (and its dependencies)"),
    ("q", "stop the stack gracefully and quit"),
    ("C-c", "1st: stop gracefully, 2nd: kill all, 3rd: exit"),
    ("?", "this help (any key closes it)"),
];

fn draw_help(frame: &mut Frame<'_>, size: Rect) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    let lines: Vec<Line<'static>> = KEYS
        .iter()
        .map(|(k, what)| {
            text.clear();
            // Writing into a String cannot fail.
            let _ = write!(text, "{k:<key_w$}  ");
            Line::from(vec![
                Span::styled(text.clone(), Style::default().fg(Color::Yellow)),
                Span::raw(*what),
            ])
        })
        .collect();
    let width = (size.width.saturating_sub(2)).min(74);
    let height = size
        .height
        .min(u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2);
    let area = Rect::new(
        size.x + (size.width - width) / 2,
        size.y + (size.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        area,
    );
}

/// The last lines of every service that ended badly, for the normal terminal after exit.
pub(super) fn epitaph(snap: &Snapshot, store: &LogStore, lines: usize) -> String {
    let mut out = String::new();
    for (i, s) in snap.services.iter().enumerate() {
        if !s.state.is_failure() {
            continue;
        }
        let why = s
            .reason
            .clone()
            .or_else(|| s.last_exit.clone())
            .unwrap_or_default();
        let _ = writeln!(out, "── {} {} ({why}) ──", s.name, s.state);
        for line in store.tail(i, lines) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

//! The dashboard's own state (selection, scroll, toggles, prompts) and how keys and mouse
//! events change it or turn into engine intents.
//!
//! Invariants: never touches the terminal or the engine directly — it returns an `Outcome`
//! for the run loop to carry out; scrolling is anchored on a line's sequence number, so
//! output arriving while the user reads never moves the text under their eyes.

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use super::history::LogStore;
use super::logview::{LogView, Query, Scope};
use super::view::{self, LineFormat};
use crate::engine::{Intent, Snapshot};

/// What a prompt at the bottom is being typed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptKind {
    Search,
    Filter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    pub kind: PromptKind,
    pub text: String,
    /// The filter in force before the prompt opened (restored by Esc).
    previous: Option<Query>,
}

/// What the run loop must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Nothing,
    Redraw,
    Send(Intent),
    /// Third Ctrl-C: restore the terminal, kill every tree, exit.
    ExitNow,
}

#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent view toggles, each bound to its own key"
)]
pub struct App {
    pub(crate) stack: String,
    pub(crate) names: Vec<String>,
    /// `cgroup v2` or `process groups`, as reported by the containment.
    pub(crate) containment: String,
    pub selected: usize,
    pub merged: bool,
    /// None: follow the newest line; else the sequence number of the top line.
    pub top: Option<u64>,
    pub wrap: bool,
    pub timestamps: bool,
    pub(crate) search: Option<Query>,
    pub(crate) current_match: Option<u64>,
    pub(crate) filter: Option<Query>,
    pub(crate) prompt: Option<Prompt>,
    pub help: bool,
    /// Ctrl-C presses so far (1: teardown, 2: kill, 3: exit now).
    pub interrupts: u8,
    /// A one-line message for the status bar (`no match for "x"`).
    pub(crate) message: Option<String>,
    /// Seconds east of UTC for the timestamps column.
    pub(crate) utc_offset_s: i32,
    /// The terminal's size at the last draw.
    pub size: Rect,
}

const WHEEL_LINES: usize = 3;

impl App {
    pub fn new(stack: &str, names: Vec<String>, containment: &str) -> App {
        App {
            stack: stack.to_owned(),
            names,
            containment: containment.to_owned(),
            selected: 0,
            merged: false,
            top: None,
            wrap: false,
            timestamps: false,
            search: None,
            current_match: None,
            filter: None,
            prompt: None,
            help: false,
            interrupts: 0,
            message: None,
            utc_offset_s: 0,
            size: Rect::new(0, 0, 80, 24),
        }
    }

    pub(crate) fn scope(&self) -> Scope {
        if self.merged || self.names.is_empty() {
            Scope::Merged
        } else {
            Scope::Service(self.selected)
        }
    }

    pub(crate) fn log_view<'a>(&'a self, store: &'a LogStore) -> LogView<'a> {
        LogView {
            store,
            scope: self.scope(),
            filter: self.filter.as_ref(),
        }
    }

    /// How lines of the current view are laid out in a pane `width` columns wide.
    pub(crate) fn line_format(&self, width: u16) -> LineFormat {
        LineFormat {
            timestamps: self.timestamps,
            name_width: (self.scope() == Scope::Merged)
                .then(|| self.names.iter().map(String::len).max().unwrap_or(0).max(2)),
            wrap: self.wrap,
            width: usize::from(width).max(1),
            utc_offset_s: self.utc_offset_s,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent, store: &LogStore, snap: &Snapshot) -> Outcome {
        if key.kind == KeyEventKind::Release {
            return Outcome::Nothing;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return self.interrupt();
        }
        if self.prompt.is_some() {
            return self.on_prompt_key(key, store);
        }
        self.message = None;
        if self.help {
            // Any key closes the help; it does nothing else.
            self.help = false;
            return Outcome::Redraw;
        }
        if let Some(outcome) = self.on_control_key(key.code, snap) {
            return outcome;
        }
        let page = self.page_height();
        match (key.code, ctrl) {
            (KeyCode::Up | KeyCode::Char('k'), false)
                if !key.modifiers.contains(KeyModifiers::SHIFT) =>
            {
                self.select(self.selected.saturating_sub(1))
            }
            (KeyCode::Down | KeyCode::Char('j'), false)
                if !key.modifiers.contains(KeyModifiers::SHIFT) =>
            {
                self.select(self.selected + 1)
            }
            (KeyCode::Up | KeyCode::Char('K'), _) | (KeyCode::Char('y'), true) => {
                self.scroll_up(store, 1)
            }
            (KeyCode::Down | KeyCode::Char('J'), _) | (KeyCode::Char('e'), true) => {
                self.scroll_down(store, 1)
            }
            (KeyCode::PageUp, _) | (KeyCode::Char('b'), true) => self.scroll_up(store, page),
            (KeyCode::PageDown, _) | (KeyCode::Char('f'), true) => self.scroll_down(store, page),
            (KeyCode::Char('u'), true) => self.scroll_up(store, page / 2),
            (KeyCode::Char('d'), true) => self.scroll_down(store, page / 2),
            (KeyCode::Home | KeyCode::Char('g'), _) => {
                self.top = Some(0);
                Outcome::Redraw
            }
            (KeyCode::End | KeyCode::Char('G'), _) => {
                self.top = None;
                Outcome::Redraw
            }
            (KeyCode::Char('F'), _) => {
                if self.top.is_some() {
                    self.top = None;
                } else {
                    self.top = Some(self.visible_top(store).unwrap_or(0));
                }
                Outcome::Redraw
            }
            (KeyCode::Tab | KeyCode::Char('m'), _) => {
                self.merged = !self.merged;
                self.top = None;
                Outcome::Redraw
            }
            (KeyCode::Char('w'), _) => {
                self.wrap = !self.wrap;
                Outcome::Redraw
            }
            (KeyCode::Char('t'), _) => {
                self.timestamps = !self.timestamps;
                Outcome::Redraw
            }
            (KeyCode::Char('/'), _) => self.open_prompt(PromptKind::Search),
            (KeyCode::Char('f'), false) => self.open_prompt(PromptKind::Filter),
            (KeyCode::Char('n'), _) => self.next_match(store, true),
            (KeyCode::Char('N'), _) => self.next_match(store, false),
            (KeyCode::Esc, _) => {
                self.search = None;
                self.current_match = None;
                self.filter = None;
                Outcome::Redraw
            }
            _ => Outcome::Nothing,
        }
    }

    /// Keys that act on the stack or the selected service rather than on the view.
    fn on_control_key(&mut self, code: KeyCode, snap: &Snapshot) -> Option<Outcome> {
        let service = self.selected;
        let known = service < snap.services.len();
        Some(match code {
            KeyCode::Char('q') if self.interrupts == 0 => {
                self.interrupts = 1;
                Outcome::Send(Intent::Shutdown { grace: None })
            }
            KeyCode::Char('q') => Outcome::Nothing,
            KeyCode::Char('?') => {
                self.help = true;
                Outcome::Redraw
            }
            KeyCode::Char('s') if known => Outcome::Send(Intent::Start { service }),
            KeyCode::Char('x') if known => Outcome::Send(Intent::Stop { service }),
            KeyCode::Char(c @ ('r' | 'R')) if known => Outcome::Send(Intent::Restart {
                service,
                cause: None,
                dependents: c == 'R',
            }),
            _ => return None,
        })
    }

    /// Ctrl-C: 1st graceful teardown, 2nd kill every tree, 3rd exit at once.
    fn interrupt(&mut self) -> Outcome {
        self.interrupts = self.interrupts.saturating_add(1);
        match self.interrupts {
            1 => Outcome::Send(Intent::Shutdown { grace: None }),
            2 => Outcome::Send(Intent::ForceKill),
            _ => Outcome::ExitNow,
        }
    }

    fn on_prompt_key(&mut self, key: KeyEvent, store: &LogStore) -> Outcome {
        let Some(prompt) = self.prompt.as_mut() else {
            return Outcome::Nothing;
        };
        match key.code {
            KeyCode::Esc => {
                let prompt = self.prompt.take().expect("checked above");
                if prompt.kind == PromptKind::Filter {
                    self.filter = prompt.previous;
                }
            }
            KeyCode::Enter => {
                let prompt = self.prompt.take().expect("checked above");
                if prompt.kind == PromptKind::Search {
                    self.search = Query::new(&prompt.text);
                    self.current_match = None;
                    if self.search.is_some() {
                        return self.next_match(store, false);
                    }
                }
            }
            KeyCode::Backspace => {
                prompt.text.pop();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                prompt.text.clear();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                prompt.text.push(c);
            }
            _ => return Outcome::Nothing,
        }
        if let Some(p) = &self.prompt
            && p.kind == PromptKind::Filter
        {
            // The filter applies while it is typed.
            self.filter = Query::new(&p.text);
            self.top = None;
        }
        Outcome::Redraw
    }

    fn open_prompt(&mut self, kind: PromptKind) -> Outcome {
        let text = match kind {
            PromptKind::Search => self.search.as_ref(),
            PromptKind::Filter => self.filter.as_ref(),
        }
        .map(|q| q.as_str().to_owned())
        .unwrap_or_default();
        self.prompt = Some(Prompt {
            kind,
            text,
            previous: self.filter.clone(),
        });
        Outcome::Redraw
    }

    pub fn on_mouse(&mut self, mouse: MouseEvent, store: &LogStore) -> Outcome {
        let areas = view::areas(self.size, self.names.len());
        let at = Position::new(mouse.column, mouse.row);
        match mouse.kind {
            MouseEventKind::ScrollUp if areas.table.contains(at) => {
                self.select(self.selected.saturating_sub(1))
            }
            MouseEventKind::ScrollDown if areas.table.contains(at) => {
                self.select(self.selected + 1)
            }
            MouseEventKind::ScrollUp => self.scroll_up(store, WHEEL_LINES),
            MouseEventKind::ScrollDown => self.scroll_down(store, WHEEL_LINES),
            MouseEventKind::Down(MouseButton::Left) if areas.table.contains(at) => {
                let first = view::table_offset(self.selected, areas.table.height);
                let row = usize::from(mouse.row - areas.table.y);
                // Row 0 is the header.
                if row == 0 {
                    return Outcome::Nothing;
                }
                self.help = false;
                let picked = first + row - 1;
                if picked < self.names.len() {
                    self.merged = false;
                    return self.select(picked);
                }
                Outcome::Nothing
            }
            _ => Outcome::Nothing,
        }
    }

    fn select(&mut self, index: usize) -> Outcome {
        let index = index.min(self.names.len().saturating_sub(1));
        if index == self.selected {
            return Outcome::Nothing;
        }
        self.selected = index;
        if !self.merged {
            self.top = None;
            self.current_match = None;
        }
        Outcome::Redraw
    }

    /// Rows of log text the pane shows at the current size.
    pub(crate) fn page_height(&self) -> usize {
        usize::from(view::areas(self.size, self.names.len()).logs.height).max(1)
    }

    fn visible_top(&self, store: &LogStore) -> Option<u64> {
        let areas = view::areas(self.size, self.names.len());
        let fmt = self.line_format(areas.logs.width);
        let window = self
            .log_view(store)
            .window(self.top, usize::from(areas.logs.height), |l| fmt.rows(l));
        window.lines.first().map(|l| l.seq)
    }

    fn scroll_up(&mut self, store: &LogStore, n: usize) -> Outcome {
        let Some(top) = self.visible_top(store) else {
            return Outcome::Nothing;
        };
        self.top = self.log_view(store).up_from(top, n).or(Some(top));
        Outcome::Redraw
    }

    fn scroll_down(&mut self, store: &LogStore, n: usize) -> Outcome {
        if self.top.is_none() {
            return Outcome::Nothing;
        }
        let Some(top) = self.visible_top(store) else {
            return Outcome::Nothing;
        };
        let Some(next) = self.log_view(store).down_from(top, n) else {
            self.top = None;
            return Outcome::Redraw;
        };
        self.top = Some(next);
        let areas = view::areas(self.size, self.names.len());
        let fmt = self.line_format(areas.logs.width);
        if self
            .log_view(store)
            .window(self.top, usize::from(areas.logs.height), |l| fmt.rows(l))
            .at_bottom
        {
            // Scrolled back to the end: follow again.
            self.top = None;
        }
        Outcome::Redraw
    }

    fn next_match(&mut self, store: &LogStore, forward: bool) -> Outcome {
        let Some(query) = self.search.clone() else {
            return Outcome::Nothing;
        };
        let filter = self.filter.clone();
        let view = LogView {
            store,
            scope: self.scope(),
            filter: filter.as_ref(),
        };
        match view.find(&query, self.current_match, forward) {
            Some(seq) => {
                self.current_match = Some(seq);
                // Show the match a few lines below the top of the pane.
                let context = self.page_height() / 3;
                self.top = view.up_from(seq, context).or(Some(seq));
                let areas = view::areas(self.size, self.names.len());
                let fmt = self.line_format(areas.logs.width);
                if view
                    .window(self.top, usize::from(areas.logs.height), |l| fmt.rows(l))
                    .at_bottom
                {
                    self.top = None;
                }
            }
            None => self.message = Some(format!("no match for \"{}\"", query.as_str())),
        }
        Outcome::Redraw
    }
}

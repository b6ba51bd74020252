//! Output for people: aligned tables that read right without colour. Progress bars and the
//! machine formats (JSON, JUnit) live here too as they arrive.

/// Text made safe for a terminal or a log: every control character (C0, DEL, C1) becomes a
/// visible escape (`\x1b`, `\u{9b}`) except the newline and tab a multi-line message needs. Text
/// from nodes (a lock's holder, a command's stderr) would otherwise drive the operator's terminal:
/// set its title, clear the screen, rewrite earlier lines. Idempotent: the escapes are printable.
/// Write to stdout. A reader that went away (`netctl plan | head -1`) ends netctl quietly with
/// exit 0, as ripgrep does: what it did is done, and the pipeline is not failed for it. `print!`
/// would panic instead (Rust ignores SIGPIPE, so the write returns EPIPE).
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` through `out`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::printer::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// A node's error for its own table row: without the leading "NODE: " the row already shows.
pub fn row_error(node: &str, error: Option<&str>) -> String {
    let e = error.unwrap_or_default();
    e.strip_prefix(node)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(e)
        .to_string()
}

pub fn escape_controls(s: &str) -> String {
    escape(s, true)
}

/// One table cell or progress phase: newline and tab are escaped too (they would break the layout).
fn escape_line(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, keep_layout: bool) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if keep_layout => out.push(c),
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A table cell: text (escaped when rendered), or a result word coloured when colour is on.
pub enum Cell {
    Text(String),
    Result { ok: bool, word: &'static str },
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl Cell {
    /// What the cell shows, without colour.
    fn plain(&self) -> String {
        match self {
            Cell::Text(t) => escape_line(t),
            Cell::Result { word, .. } => escape_line(word),
        }
    }

    /// The shown text with its colour around it (colour takes no width).
    fn paint(&self, plain: String, colour: bool) -> String {
        match self {
            Cell::Result { ok, .. } if colour => {
                let code = if *ok { 32 } else { 31 };
                format!("\x1b[{code}m{plain}\x1b[0m")
            }
            _ => plain,
        }
    }
}

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(Cell::from).collect());
    }

    pub fn row_cells(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Aligned columns; every cell escaped (see `escape_controls`), result words coloured only
    /// when stdout is a terminal without NO_COLOR.
    pub fn render(&self) -> String {
        self.render_with(colour_enabled())
    }

    fn render_with(&self, colour: bool) -> String {
        let header: Vec<Cell> = self.header.iter().cloned().map(Cell::from).collect();
        let rows: Vec<Vec<(String, &Cell)>> = std::iter::once(&header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| (c.plain(), c)).collect())
            .collect();
        let mut widths = vec![0; self.header.len()];
        for r in &rows {
            for (i, (plain, _)) in r.iter().enumerate() {
                widths[i] = widths[i].max(plain.chars().count());
            }
        }
        let mut out = String::new();
        for r in rows {
            let mut line = String::new();
            let last = r.len().saturating_sub(1);
            for (i, (plain, cell)) in r.into_iter().enumerate() {
                let pad = if i == last {
                    0
                } else {
                    widths[i] - plain.chars().count() + 2
                };
                line.push_str(&cell.paint(plain, colour));
                line.push_str(&" ".repeat(pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_row_error_does_not_repeat_its_node() {
        assert_eq!(
            super::row_error("node-1", Some("node-1: locked by run x")),
            "locked by run x"
        );
        assert_eq!(
            super::row_error("node-1", Some("node-10: other")),
            "node-10: other"
        );
        assert_eq!(super::row_error("node-1", None), "");
    }

    use super::{escape_controls, Cell, Table};

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["long".into(), "x".into()]);
        assert_eq!(t.render_with(false), "A     BB\nlong  x\n");
        let mut c = Table::new(&["S", "D"]);
        c.row_cells(vec![
            Cell::Result {
                ok: true,
                word: "pass",
            },
            "x".to_string().into(),
        ]);
        c.row(vec!["FAIL".into(), "y".into()]);
        assert_eq!(
            c.render_with(true),
            "S     D\n\x1b[32mpass\x1b[0m  x\nFAIL  y\n",
            "colour takes no width"
        );
        assert_eq!(c.render_with(false), "S     D\npass  x\nFAIL  y\n");
    }

    #[test]
    fn controls_become_visible_escapes() {
        let hostile = "run 1\x1b]0;pwned\x07 \x1b[2J\r\x7f\u{9b}31m\tend\nnext";
        assert_eq!(
            escape_controls(hostile),
            "run 1\\x1b]0;pwned\\x07 \\x1b[2J\\x0d\\x7f\\u{9b}31m\tend\nnext"
        );
        assert_eq!(
            escape_controls(&escape_controls(hostile)),
            escape_controls(hostile)
        );
        assert_eq!(escape_controls("plain: ünïcode ok"), "plain: ünïcode ok");
        // In a table a cell stays on its line, and a node's text cannot colour itself.
        let mut t = Table::new(&["NODE", "ERROR"]);
        t.row(vec!["n1".into(), "held by\x1b[31m x\ny\tz".into()]);
        assert_eq!(
            t.render_with(true),
            "NODE  ERROR\nn1    held by\\x1b[31m x\\x0ay\\x09z\n"
        );
    }
}

/// Progress lines, one per node, showing its current phase. Hidden when stderr is not a terminal,
/// under --quiet, or with NETCTL_NO_PROGRESS set: output then reads the same without them.
#[derive(Clone)]
pub struct Progress {
    multi: Option<indicatif::MultiProgress>,
}

#[derive(Clone)]
pub struct NodeLine {
    bar: Option<indicatif::ProgressBar>,
    node: String,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let enabled = !quiet
            && std::env::var_os("NETCTL_NO_PROGRESS").is_none()
            && std::io::stderr().is_terminal();
        Progress {
            multi: enabled.then(indicatif::MultiProgress::new),
        }
    }

    pub fn node(&self, name: &str) -> NodeLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new_spinner());
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                    .expect("static template"),
            );
            b.set_prefix(escape_line(name));
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        NodeLine {
            bar,
            node: name.to_string(),
        }
    }

    /// Run `f` with the progress lines hidden (a question must not be drawn over), then show them
    /// again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// Print a line without tearing the progress display (escaped: it often quotes a node).
    pub fn println(&self, line: &str) {
        let line = escape_controls(line);
        match &self.multi {
            Some(m) => {
                let _ = m.println(&line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl NodeLine {
    pub fn phase(&self, phase: &str) {
        if let Some(b) = &self.bar {
            b.set_message(escape_line(phase));
        }
    }

    pub fn done(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(escape_line(msg));
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

/// Colour only when stdout is a terminal and NO_COLOR is unset (https://no-color.org).
pub fn colour_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

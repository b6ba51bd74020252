//! Output for people: aligned tables that read right without colour. Progress bars and the
//! machine formats (JSON, JUnit) live here too as they arrive.

/// Characters a terminal shows: colour escapes (ESC [ ... m) take no room.
fn visible_width(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for e in chars.by_ref() {
                if e == 'm' {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| visible_width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(visible_width(c));
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(widths[i] - visible_width(c) + 2));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let mut t = super::Table::new(&["A", "BB"]);
        t.row(vec!["long".into(), "x".into()]);
        assert_eq!(t.render(), "A     BB\nlong  x\n");
        let mut c = super::Table::new(&["S", "D"]);
        c.row(vec!["\x1b[32mpass\x1b[0m".into(), "x".into()]);
        c.row(vec!["FAIL".into(), "y".into()]);
        assert_eq!(
            c.render(),
            "S     D\n\x1b[32mpass\x1b[0m  x\nFAIL  y\n",
            "colour takes no width"
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
            b.set_prefix(name.to_string());
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        NodeLine {
            bar,
            node: name.to_string(),
        }
    }

    /// Print a line without tearing the progress display.
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl NodeLine {
    pub fn phase(&self, phase: &str) {
        if let Some(b) = &self.bar {
            b.set_message(phase.to_string());
        }
    }

    pub fn done(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg.to_string());
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

pub fn result_word(ok: bool, word: &str) -> String {
    if !colour_enabled() {
        return word.to_string();
    }
    if ok {
        format!("\x1b[32m{word}\x1b[0m")
    } else {
        format!("\x1b[31m{word}\x1b[0m")
    }
}

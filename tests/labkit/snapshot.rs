//! Snapshots of the real binary's text output, in uv's style: the exit code, stdout and stderr
//! of one run, with what differs from run to run (run ids, times, durations, pids, temporary
//! paths, this host's name) replaced by placeholders, compared with tests/snapshots/NAME.snap.
//! `NETCTL_UPDATE_SNAPSHOTS=1` writes them instead; a mismatch fails with a unified diff. They
//! are goldens: review every change (docs/ci.md).

use std::path::{Path, PathBuf};
use std::process::Output;

/// The filters of one test: the built-in ones plus literal replacements (a lab's directory, a
/// temporary directory) given by the test.
#[derive(Default)]
pub struct Snapshot {
    literals: Vec<(String, String)>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        let mut s = Snapshot::default();
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if h.len() > 2 {
                s.literals.push((h.to_string(), "[HOST]".into()));
            }
        }
        s
    }

    /// Replace `from` (a path, a name) by `to` everywhere. Longer ones go first, so a path is
    /// replaced before its parent directory.
    pub fn literal(mut self, from: impl AsRef<Path>, to: &str) -> Snapshot {
        let from = from.as_ref().display().to_string();
        self.literals.push((from, to.to_string()));
        self.literals
            .sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        self
    }

    /// One run as its snapshot: the exit code, then stdout and stderr under headers.
    pub fn render(&self, o: &Output) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            o.status
                .code()
                .map_or("signal".to_string(), |c| c.to_string()),
            self.filter(&String::from_utf8_lossy(&o.stdout)),
            self.filter(&String::from_utf8_lossy(&o.stderr)),
        )
    }

    pub fn filter(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (from, to) in &self.literals {
            s = s.replace(from.as_str(), to);
        }
        let s = replace_matches(&s, run_id_at, "[RUN]");
        let s = replace_matches(&s, timestamp_at, "[DATE]");
        let s = replace_matches(&s, duration_at, "[TIME]");
        replace_matches(&s, pid_at, "pid [PID]")
    }

    /// Compare `o` with tests/snapshots/`name`.snap.
    pub fn assert(&self, name: &str, o: &Output) {
        assert_text(name, &self.render(o));
    }
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.snap"))
}

/// Compare `actual` (already filtered) with tests/snapshots/`name`.snap, or write it under
/// NETCTL_UPDATE_SNAPSHOTS=1.
pub fn assert_text(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("NETCTL_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("snapshot written: {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with NETCTL_UPDATE_SNAPSHOTS=1 and review it. This run:\n{actual}",
            path.display()
        )
    });
    if want != actual {
        let diff = similar::TextDiff::from_lines(want.as_str(), actual)
            .unified_diff()
            .context_radius(3)
            .header(&format!("tests/snapshots/{name}.snap"), "this run")
            .to_string();
        panic!(
            "snapshot {name} differs (NETCTL_UPDATE_SNAPSHOTS=1 rewrites it; review the change):\n{diff}"
        );
    }
}

/// Replace every match of `at` (which returns the match's length at a position, or None).
fn replace_matches(s: &str, at: fn(&[u8], usize) -> Option<usize>, with: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match at(b, i) {
            Some(n) => {
                out.push_str(&s[copied..i]);
                out.push_str(with);
                i += n;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[copied..]);
    out
}

fn digits(b: &[u8], i: usize, n: usize) -> bool {
    b.len() >= i + n && b[i..i + n].iter().all(u8::is_ascii_digit)
}

/// A match must not start in the middle of a word or number.
fn starts_word(b: &[u8], i: usize) -> bool {
    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.')
}

fn ends_word(b: &[u8], i: usize) -> bool {
    i >= b.len() || !b[i].is_ascii_alphanumeric()
}

/// `20261129T231500Z-1a2b`
fn run_id_at(b: &[u8], i: usize) -> Option<usize> {
    let ok = starts_word(b, i)
        && digits(b, i, 8)
        && b.get(i + 8) == Some(&b'T')
        && digits(b, i + 9, 6)
        && b.get(i + 15) == Some(&b'Z')
        && b.get(i + 16) == Some(&b'-')
        && b.len() >= i + 21
        && b[i + 17..i + 21].iter().all(u8::is_ascii_hexdigit)
        && ends_word(b, i + 21);
    ok.then_some(21)
}

/// `2026-11-30T06:20:54Z`, with optional fractions and offset.
fn timestamp_at(b: &[u8], i: usize) -> Option<usize> {
    let ok = starts_word(b, i)
        && digits(b, i, 4)
        && b.get(i + 4) == Some(&b'-')
        && digits(b, i + 5, 2)
        && b.get(i + 7) == Some(&b'-')
        && digits(b, i + 8, 2)
        && matches!(b.get(i + 10), Some(b'T' | b' '))
        && digits(b, i + 11, 2)
        && b.get(i + 13) == Some(&b':')
        && digits(b, i + 14, 2)
        && b.get(i + 16) == Some(&b':')
        && digits(b, i + 17, 2);
    if !ok {
        return None;
    }
    let mut n = 19;
    if b.get(i + n) == Some(&b'.') {
        n += 1;
        while b.get(i + n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    if matches!(b.get(i + n), Some(b'Z')) {
        n += 1;
    } else if matches!(b.get(i + n), Some(b'+' | b'-')) && digits(b, i + n + 1, 2) {
        n += 3;
        if b.get(i + n) == Some(&b':') && digits(b, i + n + 1, 2) {
            n += 3;
        }
    }
    Some(n)
}

/// `12ms`, `1.5s`, `0.003 s`, `2m10s`: a number and a time unit, as a word.
fn duration_at(b: &[u8], i: usize) -> Option<usize> {
    if !starts_word(b, i) || !b[i].is_ascii_digit() {
        return None;
    }
    let mut n = 0;
    loop {
        let start = n;
        while b.get(i + n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
        if n == start {
            break;
        }
        if b.get(i + n) == Some(&b'.') && b.get(i + n + 1).is_some_and(u8::is_ascii_digit) {
            n += 1;
            while b.get(i + n).is_some_and(u8::is_ascii_digit) {
                n += 1;
            }
        }
        let space = usize::from(b.get(i + n) == Some(&b' '));
        let unit = ["ms", "µs", "us", "s", "m", "h"]
            .into_iter()
            .find(|u| b[(i + n + space).min(b.len())..].starts_with(u.as_bytes()))?;
        let end = i + n + space + unit.len();
        // "2m10s": a unit followed by more digits goes on; "5 seconds" is no duration here.
        if !(unit == "m" || unit == "h") || !b.get(end).is_some_and(u8::is_ascii_digit) {
            return ends_word(b, end).then_some(end - i);
        }
        n = end - i;
    }
    None
}

/// `pid 12345`
fn pid_at(b: &[u8], i: usize) -> Option<usize> {
    if !starts_word(b, i) || !b[i..].starts_with(b"pid ") {
        return None;
    }
    let mut n = 4;
    while b.get(i + n).is_some_and(u8::is_ascii_digit) {
        n += 1;
    }
    (n > 4 && ends_word(b, i + n)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_replace_what_changes_and_nothing_else() {
        let s = Snapshot::default().literal("/tmp/.tmpAb12", "[TEMP]");
        let got = s.filter(
            "run 20261129T231500Z-1a2b (netctl init on h, pid 4242, since 2026-11-30T06:20:54Z)\n\
             took 1.25s, 12ms, 0.5 s, 2m10s; 3 node(s), restart(s), 10.240.91.2, 1450-byte, 30 seconds\n\
             /tmp/.tmpAb12/p.yaml:6:3: x20261129T231500Z-1a2b\n",
        );
        assert_eq!(
            got,
            "run [RUN] (netctl init on h, pid [PID], since [DATE])\n\
             took [TIME], [TIME], [TIME], [TIME]; 3 node(s), restart(s), 10.240.91.2, 1450-byte, 30 seconds\n\
             [TEMP]/p.yaml:6:3: x20261129T231500Z-1a2b\n"
        );
    }
}

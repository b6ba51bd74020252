//! A linear pre-scan that bounds how deeply a profile nests flow collections (`[` and `{`)
//! before serde_yaml sees it: libyaml's scanner keeps one possible simple key per flow level and
//! walks them for every token, so deep nesting parses in quadratic time (100k levels: minutes).
//! serde_yaml's own recursion limit (128) applies only after the whole document was scanned.
//!
//! The scan must never count less depth than libyaml has, so it follows libyaml's tokens where
//! that decides what is a bracket: comments (`#` after a blank), and quoted scalars, which start
//! only where a token starts (after indentation, `- `, `? `, `: `, `[`, `{`, `,`, an anchor or a
//! tag). A quoted scalar that runs past its line is refused: a profile never needs one, and it
//! keeps a misread quote from hiding more than the rest of one line.

/// Far deeper than any profile (which nests at most four levels).
pub const MAX_FLOW_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestingError {
    /// 1-based, as serde_yaml reports.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Comment,
    /// Inside a quoted scalar opened by this byte.
    Quoted(u8),
}

struct Scan<'a> {
    text: &'a [u8],
    i: usize,
    line: usize,
    line_start: usize,
    depth: usize,
    mode: Mode,
    /// The next byte may start a token (so a quote there opens a quoted scalar).
    token_start: bool,
    /// The last token was a quoted scalar: a `:` right after it is a value indicator.
    after_quote: bool,
}

/// Refuse `text` if flow collections nest deeper than `limit`, or a quoted scalar spans lines.
pub fn check(text: &str, limit: usize) -> Result<(), NestingError> {
    let mut s = Scan {
        text: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        mode: Mode::Normal,
        token_start: true,
        after_quote: false,
    };
    while s.i < s.text.len() {
        match s.mode {
            Mode::Quoted(q) => s.quoted(q)?,
            Mode::Comment => s.comment(),
            Mode::Normal => s.normal(limit)?,
        }
    }
    Ok(())
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn is_blank_or_end(b: Option<u8>) -> bool {
    b.is_none_or(|b| is_blank(b) || b == b'\n')
}

impl Scan<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.text.get(i).copied()
    }

    fn error(&self, message: String) -> NestingError {
        NestingError {
            line: self.line,
            column: self.i - self.line_start + 1,
            message,
        }
    }

    fn newline(&mut self) {
        self.i += 1;
        self.line += 1;
        self.line_start = self.i;
        // In block context every line starts a token; in a flow collection a line continues
        // whatever the previous one was in (a plain scalar may run over lines).
        if self.depth == 0 {
            self.token_start = true;
        }
    }

    fn comment(&mut self) {
        if self.text[self.i] == b'\n' {
            self.mode = Mode::Normal;
            self.newline();
        } else {
            self.i += 1;
        }
    }

    fn quoted(&mut self, q: u8) -> Result<(), NestingError> {
        match (self.text[self.i], q) {
            (b'\n', _) => {
                return Err(self.error(
                    "a quoted string runs past the end of its line; profile values fit on one line"
                        .into(),
                ))
            }
            // '' is a quote inside single quotes; a backslash escapes the next byte in double.
            (b'\'', b'\'') if self.at(self.i + 1) == Some(b'\'') => self.i += 1,
            (b'\\', b'"') if self.at(self.i + 1).is_some_and(|b| b != b'\n') => self.i += 1,
            (b, q) if b == q => {
                self.mode = Mode::Normal;
                self.token_start = false;
                self.after_quote = true;
            }
            _ => {}
        }
        self.i += 1;
        Ok(())
    }

    fn normal(&mut self, limit: usize) -> Result<(), NestingError> {
        let b = self.text[self.i];
        let line_begins = self.i == self.line_start;
        let prev_blank = line_begins || is_blank(self.text[self.i - 1]);
        match b {
            b'\n' => {
                self.newline();
                return Ok(());
            }
            _ if is_blank(b) => {}
            b'#' if prev_blank => self.mode = Mode::Comment,
            b'\'' | b'"' if self.token_start => self.mode = Mode::Quoted(b),
            b'[' | b'{' => {
                self.depth += 1;
                if self.depth > limit {
                    return Err(self.error(format!(
                        "flow collections ([ and {{) nested more than {limit} deep; a profile needs a few levels"
                    )));
                }
                self.token_start = true;
            }
            b']' | b'}' => {
                self.depth = self.depth.saturating_sub(1);
                self.token_start = false;
            }
            b',' => self.token_start = true,
            b':' if self.after_quote || is_blank_or_end(self.at(self.i + 1)) => {
                self.token_start = true
            }
            b'-' | b'?' if self.token_start && is_blank_or_end(self.at(self.i + 1)) => {}
            // A document marker at a line's start: a token may follow it.
            b'-' | b'.'
                if line_begins
                    && self.text[self.i..].starts_with(if b == b'-' { b"---" } else { b"..." })
                    && is_blank_or_end(self.at(self.i + 3)) =>
            {
                self.i += 3;
                return Ok(());
            }
            // An anchor or tag before a node: the node's token starts after it.
            b'&' | b'!' if self.token_start => {
                while self
                    .at(self.i + 1)
                    .is_some_and(|c| !is_blank(c) && c != b'\n')
                {
                    self.i += 1;
                }
            }
            _ => self.token_start = false,
        }
        if !is_blank(b) {
            self.after_quote = false;
        }
        self.i += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        check(text, limit).is_ok()
    }

    #[test]
    fn real_profiles_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            assert_eq!(check(&text, 4), Ok(()), "{}", p.display());
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_found_with_its_position() {
        assert!(depth_ok("a: [[[]]]\n", 3));
        let e = check("a: b\nc: [[[[]]]]\n", 3).unwrap_err();
        assert_eq!((e.line, e.column), (2, 7));
        assert!(!depth_ok("a:\n  - {b: {c: {d: {}}}}\n", 3));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        assert!(depth_ok("a: '[[[[' # [[[[\nb: \"[[[[\"\n", 1));
        assert!(depth_ok("#[[[[\nb: [x] #[[[[\n", 1));
        // Inside a plain scalar a quote is just a character; the brackets after it count.
        assert!(!depth_ok("a: [b 'c, [[[ ]]]' ]\n", 2));
        // A '#' not after a blank does not start a comment.
        assert!(!depth_ok("a: [b#[[[ ]]] ]\n", 2));
    }

    #[test]
    fn closing_brackets_inside_quotes_cannot_hide_depth() {
        let hidden = "[ ']]]', ".repeat(10);
        assert!(!depth_ok(&format!("a: {hidden}\n"), 5));
        let hidden = "[ \"]\\\"]]\", ".repeat(10);
        assert!(!depth_ok(&format!("a: {hidden}\n"), 5));
        // After a quoted key, after an anchor or tag: still a quoted scalar.
        let hidden = "{\"k\":\"]]]\", x: ".repeat(10);
        assert!(!depth_ok(&format!("a: {hidden}\n"), 5));
        let hidden = "[ &a ']]]', !t ']]', ".repeat(10);
        assert!(!depth_ok(&format!("a: {hidden}\n"), 5));
        // In a flow collection a line may continue a plain scalar: its quote is no quote.
        assert!(!depth_ok("a: [b\n'[[[[[ '\n", 5));
    }

    #[test]
    fn a_quoted_string_over_lines_is_refused() {
        let e = check("a: 'b\n  c'\n", MAX_FLOW_DEPTH).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("past the end of its line"));
        assert!(depth_ok("a: it's\nb: x\n", MAX_FLOW_DEPTH));
    }
}

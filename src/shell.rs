//! Remote shell, built one way: a fixed script file from templates/ (embedded at build time) with
//! its arguments set on top as quoted assignments (`NAME='value'`) and, for a list, as positional
//! parameters (`set -- 'a' 'b'`). The script body reads "$NAME" and "$@"; no value is ever spliced
//! into shell text, so a value with quotes, `$(...)` or newlines reaches the script byte for byte.
//! Scripts print what they find as tagged lines, `@@tag rest`, read back by `tagged`.
//!
//! A leaf module: it imports nothing from the crate.

/// A shell script file under templates/, embedded into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    /// Its path under templates/ (for errors and the shellcheck test).
    pub path: &'static str,
    pub body: &'static str,
}

/// `script_file!("node/gather.sh")`: the file under templates/, checked to exist at build time.
macro_rules! script_file {
    ($path:literal) => {
        $crate::shell::File {
            path: $path,
            body: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path)),
        }
    };
}
pub(crate) use script_file;

/// A script file and its arguments.
#[derive(Debug, Clone)]
pub struct Script {
    file: File,
    /// Files of shell functions the body calls, placed before it.
    includes: Vec<File>,
    vars: Vec<(String, String)>,
    args: Vec<String>,
}

impl Script {
    pub fn new(file: File) -> Script {
        Script {
            file,
            includes: Vec::new(),
            vars: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Shell functions from another file (one definition shared by several scripts).
    pub fn include(mut self, lib: File) -> Script {
        self.includes.push(lib);
        self
    }

    /// `NAME='value'` at the top. Names are the script's own (upper case, digits, `_`): a bad
    /// one is a bug in netctl, not in its input.
    pub fn var(mut self, name: &str, value: impl AsRef<str>) -> Script {
        assert!(
            is_name(name),
            "{name:?} is not a shell variable name ({})",
            self.file.path
        );
        self.vars
            .push((name.to_string(), value.as_ref().to_string()));
        self
    }

    /// The script's positional parameters, `set -- ...`, each exactly as given.
    pub fn args<I, S>(mut self, items: I) -> Script
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(items.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// The text sent to the node: a leading `#!` line stays first, then the arguments, the
    /// included functions and the body.
    pub fn build(&self) -> String {
        let (shebang, body) = match self.file.body.strip_prefix("#!") {
            Some(rest) => {
                let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
                (&self.file.body[..end + 2], &rest[end..])
            }
            None => ("", self.file.body),
        };
        let mut s = String::from(shebang);
        s.push_str(&format!("# netctl: {}\n", self.file.path));
        for (name, value) in &self.vars {
            s.push_str(&format!("{name}={}\n", sh_quote(value)));
        }
        if !self.args.is_empty() {
            s.push_str("set --");
            for a in &self.args {
                s.push(' ');
                s.push_str(&sh_quote(a));
            }
            s.push('\n');
        }
        for lib in &self.includes {
            push_line_ended(&mut s, lib.body);
        }
        push_line_ended(&mut s, body);
        s
    }
}

fn push_line_ended(s: &mut String, text: &str) {
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Quote a string for a POSIX shell. Profile values are validated to safe characters as well;
/// this is what makes that a second wall rather than the only one.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b':' | b'=' | b',' | b'@' | b'+'
                )
        })
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One `@@tag rest` line of a script's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// 1-based line number in the output, and the whole line (for errors).
    pub line: usize,
    pub text: &'a str,
    pub tag: &'a str,
    /// Everything after the first space after the tag, as printed ("" when there is none).
    pub rest: &'a str,
}

/// The tagged lines of a script's output, in order. Lines without `@@` (a shell's noise, a
/// tool's warning) are not facts and are skipped.
pub fn tagged(out: &str) -> impl Iterator<Item = Tagged<'_>> {
    out.lines().enumerate().filter_map(|(i, line)| {
        let body = line.strip_prefix("@@")?;
        let (tag, rest) = body.split_once(' ').unwrap_or((body, ""));
        Some(Tagged {
            line: i + 1,
            text: line,
            tag,
            rest,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: File = File {
        path: "test/echo.sh",
        body: "#!/bin/sh\n# prints its arguments\nprintf '%s|' \"$ONE\" \"$TWO\" \"$@\"",
    };

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("10.200.0.0/24"), "10.200.0.0/24");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(sh_quote(""), "''");
    }

    /// Hostile values reach the script as the exact bytes given, whether variables or arguments.
    #[test]
    fn hostile_arguments_arrive_byte_for_byte() {
        let hostile = [
            "it's \"quoted\"",
            "$(touch /tmp/netctl-pwned) `id` ${HOME}",
            "two\nlines\n",
            "",
            "-n",
            "*",
            "back\\slash \\' end'",
            "tab\there; exit 3",
        ];
        for a in hostile {
            for b in hostile {
                let s = Script::new(ECHO)
                    .var("ONE", a)
                    .var("TWO", b)
                    .args([b, a, "x"])
                    .build();
                assert_eq!(sh(&s), format!("{a}|{b}|{b}|{a}|x|"), "{s}");
            }
        }
        assert!(!std::path::Path::new("/tmp/netctl-pwned").exists());
    }

    #[test]
    fn the_shebang_stays_first_and_includes_come_before_the_body() {
        const LIB: File = File {
            path: "test/lib.sh",
            body: "greet() { printf 'hi %s\\n' \"$1\"; }",
        };
        const MAIN: File = File {
            path: "test/main.sh",
            body: "greet \"$WHO\"\n",
        };
        let s = Script::new(ECHO).var("ONE", "1").build();
        assert!(
            s.starts_with("#!/bin/sh\n# netctl: test/echo.sh\nONE=1\n"),
            "{s}"
        );
        assert!(
            s.ends_with("printf '%s|' \"$ONE\" \"$TWO\" \"$@\"\n"),
            "{s}"
        );
        let s = Script::new(MAIN).include(LIB).var("WHO", "a b").build();
        assert_eq!(sh(&s), "hi a b\n");
        assert!(!s.contains("set --"), "no arguments, no set --: {s}");
    }

    #[test]
    #[should_panic(expected = "not a shell variable name")]
    fn a_bad_variable_name_is_a_bug() {
        let _ = Script::new(ECHO).var("x; reboot", "v");
    }

    #[test]
    fn tagged_lines() {
        let out = "noise\n@@state 644 abc\n@@systemd\n@@unit a.service  \n@@ x\n@@@odd\n\n@@path /a b/c\r\n";
        let t: Vec<_> = tagged(out).collect();
        let tags: Vec<_> = t.iter().map(|t| (t.line, t.tag, t.rest)).collect();
        assert_eq!(
            tags,
            [
                (2, "state", "644 abc"),
                (3, "systemd", ""),
                (4, "unit", "a.service  "),
                (5, "", "x"),
                (6, "@odd", ""),
                (8, "path", "/a b/c"),
            ]
        );
        assert_eq!(t[1].text, "@@systemd");
        assert_eq!(tagged("").count(), 0);
        assert_eq!(tagged("@@").next().map(|t| (t.tag, t.rest)), Some(("", "")));
    }
}

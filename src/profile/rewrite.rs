//! Change a few scalar keys of a profile file in place, keeping every other byte: comments, key
//! order, quoting, indentation and line endings. The profile in git is the desired network, so a
//! one-off `switch --networking` writes its result back here; a YAML serializer would rewrite the
//! whole file (comments gone, order and quoting changed) and bury the change in a diff.
//!
//! Only what can be edited line by line is edited: block mappings, and a key's value inside a
//! one-line flow mapping (`routes: { backend: host-gw }`). Anything else (a flow-style parent
//! spanning lines, anchors and aliases, tags, a key written twice, a block scalar) is refused
//! with the reason, and the caller tells the operator which lines to change by hand. Every edit
//! is checked by parsing both texts: the new document must equal the old one with exactly the
//! requested keys set, or nothing is returned.

use std::io::Write;
use std::path::Path;

/// One key to set: its path from the document's root, and the plain scalar it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub path: Vec<String>,
    pub value: String,
}

impl Set {
    pub fn new(path: &[&str], value: &str) -> Set {
        Set {
            path: path.iter().map(|s| s.to_string()).collect(),
            value: value.to_string(),
        }
    }
    /// `networking.routes.backend`
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("the profile is not YAML netctl can read: {0}")]
    NotYaml(String),
    #[error("{key} is written {count} times (lines {lines})")]
    Twice {
        key: String,
        count: usize,
        lines: String,
    },
    #[error("{key} (line {line}) is {why}")]
    Unsupported {
        key: String,
        line: usize,
        why: &'static str,
    },
    #[error("the edited profile would differ in more than {0}")]
    Unverified(String),
    #[error("{0} is not a plain scalar")]
    BadValue(String),
}

/// Set every key of `sets` in `text`; the text back unchanged when every key already holds its
/// value.
pub fn set(text: &str, sets: &[Set]) -> Result<String, RewriteError> {
    let before: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| RewriteError::NotYaml(e.to_string()))?;
    let mut doc = Doc::new(text);
    for s in sets {
        if !is_plain(&s.value) {
            return Err(RewriteError::BadValue(s.value.clone()));
        }
        doc.set(&s.path, &s.value)?;
    }
    let out = doc.text();
    let after: serde_yaml::Value = serde_yaml::from_str(&out).map_err(|_| {
        RewriteError::Unverified(sets.iter().map(Set::key).collect::<Vec<_>>().join(", "))
    })?;
    let mut want = before;
    for s in sets {
        set_value(&mut want, &s.path, &s.value);
    }
    if after != want {
        return Err(RewriteError::Unverified(
            sets.iter().map(Set::key).collect::<Vec<_>>().join(", "),
        ));
    }
    Ok(out)
}

/// Write `text` to `path` atomically: a temporary file in the same directory with the file's
/// mode and owner, flushed, then renamed over it (a symlink is followed to the file it names).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&real)?;
    let dir = real.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".netctl-profile-")
        .tempfile_in(dir)?;
    tmp.as_file_mut().write_all(text.as_bytes())?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    // Root editing an operator's checkout leaves the file theirs.
    std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&real).map_err(|e| e.error)?;
    Ok(())
}

use std::os::unix::fs::PermissionsExt;

/// Values this module writes unquoted or inside the quotes a key already has: names such as
/// `vxlan` or `host-gw`, which need no escaping in any YAML style.
fn is_plain(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !v.starts_with(['-', '.'])
}

fn set_value(v: &mut serde_yaml::Value, path: &[String], value: &str) {
    let Some((first, rest)) = path.split_first() else {
        *v = serde_yaml::Value::String(value.to_string());
        return;
    };
    if !v.is_mapping() {
        *v = serde_yaml::Value::Mapping(Default::default());
    }
    let map = v.as_mapping_mut().expect("a mapping");
    let key = serde_yaml::Value::String(first.clone());
    let child = map.entry(key).or_insert(serde_yaml::Value::Null);
    set_value(child, rest, value);
}

/// The text as lines, each with its own line ending.
struct Doc {
    lines: Vec<String>,
    eol: &'static str,
}

/// A `key: rest` line of a block mapping.
#[derive(Clone)]
struct Entry {
    line: usize,
    indent: usize,
    key: String,
    /// Byte offset in the line where the value part starts (just after the colon).
    value_at: usize,
}

impl Doc {
    fn new(text: &str) -> Doc {
        let lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
        let crlf = lines.iter().filter(|l| l.ends_with("\r\n")).count();
        let eol = if crlf * 2 > lines.len() { "\r\n" } else { "\n" };
        Doc { lines, eol }
    }

    fn text(&self) -> String {
        self.lines.concat()
    }

    fn body(&self, i: usize) -> &str {
        self.lines[i].trim_end_matches(['\n', '\r'])
    }

    /// Whether line `i` holds content (not blank, not only a comment, not a document marker).
    fn content(&self, i: usize) -> bool {
        let t = self.body(i).trim_start();
        !t.is_empty() && !t.starts_with('#')
    }

    fn indent(&self, i: usize) -> usize {
        let b = self.body(i);
        b.len() - b.trim_start_matches(' ').len()
    }

    /// The lines of a block mapping whose parent is at `parent` (None: the document) and
    /// `parent_indent` (-1 for the document): from the line after the parent to the last line
    /// indented deeper.
    fn block(&self, parent: Option<usize>, parent_indent: isize) -> (usize, usize) {
        let start = parent.map_or(0, |p| p + 1);
        let mut end = start;
        for i in start..self.lines.len() {
            if !self.content(i) {
                continue;
            }
            if self.body(i).trim_start().starts_with("---") && parent.is_none() {
                continue;
            }
            if self.indent(i) as isize <= parent_indent {
                break;
            }
            end = i + 1;
        }
        (start, end)
    }

    /// The entries of the block mapping in lines `range`, at its own indentation.
    fn entries(
        &self,
        (start, end): (usize, usize),
        dotted: &str,
    ) -> Result<Vec<Entry>, RewriteError> {
        let mut indent = None;
        let mut out = Vec::new();
        for i in start..end {
            if !self.content(i) {
                continue;
            }
            let b = self.body(i);
            if b.trim_start().starts_with("---") && self.indent(i) == 0 {
                if out.is_empty() {
                    continue;
                }
                return Err(unsupported(dotted, i, "followed by another YAML document"));
            }
            if b[self.indent(i)..].starts_with('\t') {
                return Err(unsupported(dotted, i, "indented with a tab"));
            }
            let ind = self.indent(i);
            let want = *indent.get_or_insert(ind);
            if ind < want {
                return Err(unsupported(dotted, i, "indented unevenly"));
            }
            // Deeper lines belong to the entry above, and so do the items of a block sequence
            // written at its key's indentation (`nodes:` then `- name: a`).
            let b = &b[ind..];
            if ind > want || b == "-" || b.starts_with("- ") {
                continue;
            }
            let b = self.body(i);
            match key_of(b, ind) {
                Some((key, value_at)) => out.push(Entry {
                    line: i,
                    indent: ind,
                    key,
                    value_at,
                }),
                None => return Err(unsupported(dotted, i, "not in a block mapping")),
            }
        }
        Ok(out)
    }

    fn set(&mut self, path: &[String], value: &str) -> Result<(), RewriteError> {
        let mut parent: Option<Entry> = None;
        let mut step = 2;
        for (depth, key) in path.iter().enumerate() {
            let dotted = path[..=depth].join(".");
            let pindent = parent.as_ref().map_or(-1, |p| p.indent as isize);
            let range = self.block(parent.as_ref().map(|p| p.line), pindent);
            let entries = self.entries(range, &dotted)?;
            if let (Some(p), Some(e)) = (&parent, entries.first()) {
                step = e.indent - p.indent;
            }
            let found: Vec<&Entry> = entries.iter().filter(|e| e.key == *key).collect();
            if found.len() > 1 {
                return Err(RewriteError::Twice {
                    key: dotted,
                    count: found.len(),
                    lines: found
                        .iter()
                        .map(|e| (e.line + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let last = depth + 1 == path.len();
            let Some(e) = found.into_iter().next() else {
                let indent = match (entries.first(), &parent) {
                    (Some(e), _) => e.indent,
                    (None, Some(p)) => p.indent + step,
                    (None, None) => 0,
                };
                let at = entries
                    .last()
                    .map_or(range.0, |_| self.last_content(range) + 1);
                self.insert(at, indent, step, &path[depth..], value);
                return Ok(());
            };
            let rest = &self.body(e.line)[e.value_at..];
            let (val, _comment) = split_comment(rest);
            let val = val.trim();
            // A whole top-level section in flow style is the operator's layout to keep: refused.
            if val.starts_with('{') && depth > 0 {
                let line = e.line;
                return self.set_in_flow(line, e.value_at, &path[depth + 1..], value, &dotted);
            }
            if last {
                let line = e.line;
                return self.replace_scalar(line, e.value_at, value, &dotted);
            }
            check_block_parent(val, &dotted, e.line)?;
            parent = Some(e.clone());
        }
        Ok(())
    }

    fn last_content(&self, (start, end): (usize, usize)) -> usize {
        (start..end)
            .rev()
            .find(|&i| self.content(i))
            .unwrap_or(start)
    }

    /// New lines for `keys` (the last one holds `value`), at `indent`, each deeper one `step`
    /// further in.
    fn insert(&mut self, at: usize, indent: usize, step: usize, keys: &[String], value: &str) {
        // The line before may lack a final newline (the file's last line).
        if at > 0 && at == self.lines.len() && !self.lines[at - 1].ends_with('\n') {
            self.lines[at - 1].push_str(self.eol);
        }
        let new: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let pad = " ".repeat(indent + i * step);
                if i + 1 == keys.len() {
                    format!("{pad}{k}: {value}{}", self.eol)
                } else {
                    format!("{pad}{k}:{}", self.eol)
                }
            })
            .collect();
        self.lines.splice(at..at, new);
    }

    /// Replace the scalar after `value_at` on `line`, keeping its quotes and what follows it.
    fn replace_scalar(
        &mut self,
        line: usize,
        value_at: usize,
        value: &str,
        dotted: &str,
    ) -> Result<(), RewriteError> {
        let body = self.body(line).to_string();
        let rest = &body[value_at..];
        let (val, _) = split_comment(rest);
        let lead = val.len() - val.trim_start().len();
        let token = val.trim();
        let span = scalar_span(token, dotted, line)?;
        let start = value_at + lead + span.0;
        let end = value_at + lead + span.1;
        let ending = &self.lines[line][body.len()..];
        self.lines[line] = format!("{}{value}{}{ending}", &body[..start], &body[end..]);
        Ok(())
    }

    /// `parent: { a: 1, key: old }` on one line: set `rest` (one key) inside the braces.
    fn set_in_flow(
        &mut self,
        line: usize,
        value_at: usize,
        rest: &[String],
        value: &str,
        dotted: &str,
    ) -> Result<(), RewriteError> {
        let [key] = rest else {
            return Err(unsupported(dotted, line, "in flow style"));
        };
        let body = self.body(line).to_string();
        let (val, _) = split_comment(&body[value_at..]);
        let open = value_at + val.find('{').expect("starts with a brace");
        let close = value_at + val.trim_end().len() - 1;
        if !body[close..].starts_with('}') {
            return Err(unsupported(dotted, line, "a flow mapping that spans lines"));
        }
        let inner = &body[open + 1..close];
        if inner.contains(['{', '[', '&', '*', '!', '"', '\'', '#']) {
            return Err(unsupported(
                dotted,
                line,
                "a flow mapping netctl does not edit (nested, quoted or anchored)",
            ));
        }
        let mut pos = open + 1;
        let mut hits = Vec::new();
        for item in inner.split(',') {
            if let Some((k, v)) = item.split_once(':') {
                if k.trim() == key {
                    let vstart = pos + k.len() + 1;
                    let lead = v.len() - v.trim_start().len();
                    hits.push((vstart + lead, vstart + lead + v.trim().len()));
                }
            }
            pos += item.len() + 1;
        }
        let full = format!("{dotted}.{key}");
        let ending = self.lines[line][body.len()..].to_string();
        let new = match hits.as_slice() {
            [] => {
                let trimmed = inner.trim_end();
                let at = open + 1 + trimmed.len();
                // After the last entry, before the spaces that close the braces: `{a: 1}` and
                // `{ a: 1 }` keep their style; an empty `{}` becomes `{ key: value }`.
                let (sep, tail) = if trimmed.trim().is_empty() {
                    (" ", if inner.is_empty() { " " } else { "" })
                } else {
                    (", ", "")
                };
                format!("{}{sep}{key}: {value}{tail}{}", &body[..at], &body[at..])
            }
            [(s, e)] => format!("{}{value}{}", &body[..*s], &body[*e..]),
            _ => {
                return Err(RewriteError::Twice {
                    key: full,
                    count: hits.len(),
                    lines: (line + 1).to_string(),
                })
            }
        };
        self.lines[line] = new + &ending;
        Ok(())
    }
}

fn unsupported(key: &str, line: usize, why: &'static str) -> RewriteError {
    RewriteError::Unsupported {
        key: key.to_string(),
        line: line + 1,
        why,
    }
}

/// A parent key must open a block mapping: nothing after its colon but a comment.
fn check_block_parent(val: &str, dotted: &str, line: usize) -> Result<(), RewriteError> {
    match val.chars().next() {
        None => Ok(()),
        Some('&') | Some('*') => Err(unsupported(dotted, line, "an anchor or alias")),
        Some('!') => Err(unsupported(dotted, line, "tagged")),
        Some('{') | Some('[') => Err(unsupported(dotted, line, "in flow style")),
        _ => Err(unsupported(dotted, line, "not a mapping")),
    }
}

/// `key:` at `indent` of a block mapping line: the key (unquoted) and where its value starts.
fn key_of(line: &str, indent: usize) -> Option<(String, usize)> {
    let s = &line[indent..];
    let (key, after) = match s.chars().next()? {
        q @ ('"' | '\'') => {
            let end = s[1..].find(q)? + 1;
            (s[1..end].to_string(), end + 1)
        }
        '-' | '?' | '[' | '{' | '&' | '*' | '!' | '|' | '>' => return None,
        _ => {
            let bytes = s.as_bytes();
            let at = (0..bytes.len()).find(|&i| {
                bytes[i] == b':' && bytes.get(i + 1).is_none_or(|c| *c == b' ' || *c == b'\t')
            })?;
            (s[..at].trim_end().to_string(), at)
        }
    };
    s[after..]
        .starts_with(':')
        .then(|| (key, indent + after + 1))
}

/// The value part and the comment after it (` #...`), outside quotes.
fn split_comment(rest: &str) -> (&str, &str) {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in rest.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && (prev == ' ' || prev == '\t') => return (&rest[..i], &rest[i..]),
            None => {}
        }
        prev = c;
    }
    (rest, "")
}

/// Where the scalar's text is inside `token` (inside the quotes for a quoted one).
fn scalar_span(token: &str, dotted: &str, line: usize) -> Result<(usize, usize), RewriteError> {
    match token.chars().next() {
        None => Err(unsupported(
            dotted,
            line,
            "empty (its value is on another line)",
        )),
        Some('&') | Some('*') => Err(unsupported(dotted, line, "an anchor or alias")),
        Some('!') => Err(unsupported(dotted, line, "tagged")),
        Some('|') | Some('>') => Err(unsupported(dotted, line, "a block scalar")),
        Some('[') | Some('{') => Err(unsupported(dotted, line, "in flow style")),
        Some(q @ ('"' | '\'')) => {
            if token.len() < 2 || !token.ends_with(q) || token[1..token.len() - 1].contains(q) {
                return Err(unsupported(
                    dotted,
                    line,
                    "a quoted value netctl does not edit",
                ));
            }
            Ok((1, token.len() - 1))
        }
        Some(_) => Ok((0, token.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(v: &str) -> Set {
        Set::new(&["networking", "provider"], v)
    }
    fn routes_backend(v: &str) -> Set {
        Set::new(&["networking", "routes", "backend"], v)
    }

    /// Only the lines that change differ; every other byte is kept.
    fn changed_lines(a: &str, b: &str) -> Vec<(String, String)> {
        a.lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect()
    }

    const PROFILE: &str = "\
# the lab cluster
apiVersion: netctl/v1
kind: ClusterProfile
name: lab   # keep me
networking:
  # host-gw until the VPC allows it
  provider: routes      # was flannel
  cniBinDir: /usr/lib/cni
  routes:
    backend: \"host-gw\"
    mtu: 1500

nodes:
  - { name: n1, address: 10.0.0.1 }
";

    #[test]
    fn comments_quotes_and_order_are_kept() {
        let out = set(PROFILE, &[provider("canal"), routes_backend("vxlan")]).unwrap();
        assert_eq!(
            changed_lines(PROFILE, &out),
            [
                (
                    "  provider: routes      # was flannel".into(),
                    "  provider: canal      # was flannel".into()
                ),
                (
                    "    backend: \"host-gw\"".into(),
                    "    backend: \"vxlan\"".into()
                ),
            ]
        );
        assert_eq!(out.lines().count(), PROFILE.lines().count());
    }

    #[test]
    fn setting_what_is_there_changes_nothing() {
        let out = set(PROFILE, &[provider("routes"), routes_backend("host-gw")]).unwrap();
        assert_eq!(out, PROFILE);
        let once = set(PROFILE, &[routes_backend("vxlan")]).unwrap();
        assert_eq!(set(&once, &[routes_backend("vxlan")]).unwrap(), once);
    }

    #[test]
    fn an_absent_key_is_added_under_its_parent_with_the_files_indentation() {
        let text =
            "networking:\n    provider: routes\n    cniBinDir: /opt/cni\n# nodes next\nnodes: []\n";
        let out = set(
            text,
            &[
                provider("flannel"),
                Set::new(&["networking", "flannel", "backend"], "wireguard"),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "networking:\n    provider: flannel\n    cniBinDir: /opt/cni\n    flannel:\n        backend: wireguard\n# nodes next\nnodes: []\n"
        );
        // Under an existing parent, after its last line.
        let text = "networking:\n  provider: routes\n  routes:\n    mtu: 1400\nnodes: []";
        let out = set(text, &[routes_backend("vxlan")]).unwrap();
        assert_eq!(
            out,
            "networking:\n  provider: routes\n  routes:\n    mtu: 1400\n    backend: vxlan\nnodes: []"
        );
        // At the end of a file without a final newline.
        let text = "networking:\n  provider: routes";
        let out = set(text, &[routes_backend("vxlan")]).unwrap();
        assert_eq!(
            out,
            "networking:\n  provider: routes\n  routes:\n    backend: vxlan\n"
        );
    }

    /// The lab's profiles write a backend as a one-line flow mapping.
    #[test]
    fn a_key_inside_a_one_line_flow_mapping_is_edited_in_place() {
        let text =
            "networking:\n  provider: routes\n  routes: { backend: host-gw, mtu: 1400 }  # lab\n";
        let out = set(text, &[routes_backend("vxlan")]).unwrap();
        assert_eq!(
            out,
            "networking:\n  provider: routes\n  routes: { backend: vxlan, mtu: 1400 }  # lab\n"
        );
        let text = "networking:\n  provider: routes\n  routes: { mtu: 1400 }\n";
        assert_eq!(
            set(text, &[routes_backend("vxlan")]).unwrap(),
            "networking:\n  provider: routes\n  routes: { mtu: 1400, backend: vxlan }\n"
        );
        let text = "networking:\n  provider: routes\n  routes: {mtu: 1400}\n";
        assert_eq!(
            set(text, &[routes_backend("vxlan")]).unwrap(),
            "networking:\n  provider: routes\n  routes: {mtu: 1400, backend: vxlan}\n"
        );
        let text = "networking:\n  provider: routes\n  routes: {}\n";
        assert_eq!(
            set(text, &[routes_backend("vxlan")]).unwrap(),
            "networking:\n  provider: routes\n  routes: { backend: vxlan }\n"
        );
    }

    /// A block sequence may sit at its key's indentation: its items are not keys of the mapping.
    #[test]
    fn sequences_at_their_keys_indentation_are_skipped() {
        let text = "name: t\nnodes:\n- name: a\n-\n  name: b\nnetworking:\n  provider: routes\n";
        assert_eq!(
            set(text, &[provider("canal")]).unwrap(),
            text.replace("provider: routes", "provider: canal")
        );
    }

    #[test]
    fn crlf_is_kept_and_used_for_new_lines() {
        let text = "name: t\r\nnetworking:\r\n  provider: routes\r\nnodes: []\r\n";
        let out = set(text, &[provider("kubenet"), routes_backend("vxlan")]).unwrap();
        assert_eq!(
            out,
            "name: t\r\nnetworking:\r\n  provider: kubenet\r\n  routes:\r\n    backend: vxlan\r\nnodes: []\r\n"
        );
    }

    #[test]
    fn what_cannot_be_edited_line_by_line_is_refused() {
        let flow = "networking: { provider: routes }\nnodes: []\n";
        assert_eq!(
            set(flow, &[provider("canal")]).unwrap_err().to_string(),
            "networking (line 1) is in flow style"
        );
        let anchored = "base: &net\n  provider: routes\nnetworking: *net\n";
        assert_eq!(
            set(anchored, &[provider("canal")]).unwrap_err().to_string(),
            "networking (line 3) is an anchor or alias"
        );
        let anchor_value = "x: &p routes\nnetworking:\n  provider: *p\n";
        assert!(matches!(
            set(anchor_value, &[provider("canal")]),
            Err(RewriteError::Unsupported { .. })
        ));
        // serde_yaml refuses a duplicate key, and so does the editor, naming both lines.
        let twice = "networking:\n  provider: routes\n  provider: canal\n";
        assert!(set(twice, &[provider("canal")]).is_err());
        let mut d = Doc::new(twice);
        assert_eq!(
            d.set(&["networking".into(), "provider".into()], "weave")
                .unwrap_err()
                .to_string(),
            "networking.provider is written 2 times (lines 2, 3)"
        );
        let multi =
            "networking:\n  provider: routes\n  routes: { backend: host-gw,\n    mtu: 1400 }\n";
        assert!(matches!(
            set(multi, &[routes_backend("vxlan")]),
            Err(RewriteError::Unsupported { .. })
        ));
        let block = "networking:\n  provider: |\n    routes\n";
        assert!(set(block, &[provider("canal")]).is_err());
        assert_eq!(
            set(PROFILE, &[provider("a b")]).unwrap_err(),
            RewriteError::BadValue("a b".into())
        );
    }

    /// A line that looks like the key but belongs to something else (a block scalar's text)
    /// is not edited: the parsed documents would differ, and the editor says so.
    #[test]
    fn an_edit_that_would_change_more_is_refused() {
        let text = "notes: |\n  provider: routes\nnetworking:\n  provider: routes\n";
        let out = set(text, &[provider("canal")]).unwrap();
        assert_eq!(
            out,
            "notes: |\n  provider: routes\nnetworking:\n  provider: canal\n"
        );
        let tricky = "networking:\n  x: \"a\n  provider: b\"\n";
        assert!(matches!(
            set(tricky, &[provider("canal")]),
            Err(RewriteError::Unverified(_))
        ));
    }

    #[test]
    fn the_write_is_atomic_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.yaml");
        std::fs::write(&p, "a: 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, "a: 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a: 2\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}

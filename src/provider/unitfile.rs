//! Editing command-line flags of a systemd service the operator wrote, keeping every other byte.
//!
//! systemd reads the unit file, then its drop-ins in file-name order; an empty `ExecStart=` clears
//! the command so far, and a service runs the one command left. kubeadm-style drop-ins pass flags
//! through `$VARIABLES` set by `Environment=` (or read from an `EnvironmentFile=`). So netctl finds
//! the effective ExecStart, looks for the flags it owns there and in the `Environment=` values the
//! command references, and changes them where they are; where they may hide in a file netctl does
//! not read (an EnvironmentFile), it refuses rather than guess.

/// One file of a unit as found on the node: the unit itself first, then its drop-ins in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitText {
    pub path: String,
    pub text: String,
}

/// What to change: flags set to a value (added where missing), flags removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct FlagEdit {
    /// (`--name`, value), in the order they are added when missing.
    pub set: Vec<(String, String)>,
    /// `--name`s taken out wherever they are.
    pub remove: Vec<String>,
    /// `--name`s that must keep the value they have where present (refused if different) and
    /// are added only where absent.
    pub keep_if_present: Vec<(String, String)>,
}

impl FlagEdit {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.keep_if_present.is_empty()
    }
    fn names(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.remove.iter().map(|n| n.as_str()))
            .chain(self.keep_if_present.iter().map(|(n, _)| n.as_str()))
    }
    fn wanted(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitEditError {
    #[error("{unit} has no ExecStart= (in {files}): netctl cannot tell how the service starts")]
    NoExecStart { unit: String, files: String },
    #[error("{unit} has {count} ExecStart= commands left after its drop-ins ({files}); a service runs one")]
    SeveralExecStart {
        unit: String,
        count: usize,
        files: String,
    },
    #[error(
        "{unit}'s ExecStart takes ${var} from EnvironmentFile= ({env_files}), which netctl does not edit, and none of the flags {flags} is in the unit or its drop-ins; set them where the variable is defined, or set kubernetes.units: own to let netctl write the unit"
    )]
    HiddenInEnvironmentFile {
        unit: String,
        var: String,
        env_files: String,
        flags: String,
    },
    #[error("{path}: {what}; netctl will not rewrite it")]
    Unsafe { path: String, what: String },
    #[error("{path}: {flag}={found}, but the profile says {wanted}; fix the profile or the unit")]
    Conflict {
        path: String,
        flag: String,
        found: String,
        wanted: String,
    },
}

/// A word of a command line with its byte span in the file (quotes included) and its text.
#[derive(Debug, Clone)]
struct Word {
    start: usize,
    end: usize,
    text: String,
}

/// One change to a file: replace `start..end` by `with`.
#[derive(Debug, Clone)]
struct Splice {
    file: usize,
    start: usize,
    end: usize,
    with: String,
}

#[derive(Debug)]
struct ExecStart {
    file: usize,
    /// The command's span: after `ExecStart=` to the end of its last physical line.
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct Assignment {
    file: usize,
    var: String,
    /// The whole word (quotes included) and the value inside it.
    word_start: usize,
    word_end: usize,
    quoted: bool,
    value: String,
}

/// The `[Service]` settings of one file that matter here, as logical lines (continuations
/// joined) with spans.
fn service_settings(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pos = 0;
    let bytes = text.as_bytes();
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..line_end];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        // The logical line runs on while a physical line ends with a backslash.
        let mut end = line_end;
        while end > pos && bytes[end - 1] == b'\\' && end < text.len() {
            end = text[end + 1..]
                .find('\n')
                .map_or(text.len(), |i| end + 1 + i);
        }
        if trimmed.starts_with('[') {
            section = trimmed.trim_end().to_string();
        } else if section == "[Service]" && !trimmed.starts_with('#') && !trimmed.starts_with(';') {
            if let Some(eq) = trimmed.find('=') {
                let key = trimmed[..eq].trim().to_string();
                out.push((key, pos + indent + eq + 1, end));
            }
        }
        pos = if end >= text.len() {
            text.len()
        } else {
            end + 1
        };
    }
    out
}

/// Split `text[start..end]` into words as systemd does for a command line: whitespace and
/// backslash-newline separate, double and single quotes group.
fn words(text: &str, start: usize, end: usize) -> Result<Vec<Word>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        if b[i] == b' ' || b[i] == b'\t' || b[i] == b'\n' || b[i] == b'\r' {
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 1 < end && b[i + 1] == b'\n' {
            i += 2;
            continue;
        }
        if b[i] == b'\\' && i + 1 == end {
            break;
        }
        let ws = i;
        let mut word = String::new();
        while i < end && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            match b[i] {
                q @ (b'"' | b'\'') => {
                    let close = text[i + 1..end]
                        .find(q as char)
                        .ok_or("an unterminated quote")?;
                    let inner = &text[i + 1..i + 1 + close];
                    if inner.contains('\\') {
                        return Err("a backslash inside quotes".into());
                    }
                    word.push_str(inner);
                    i += close + 2;
                }
                b'\\' => return Err("a backslash escape".into()),
                _ => {
                    let c = text[i..].chars().next().expect("in bounds");
                    word.push(c);
                    i += c.len_utf8();
                }
            }
        }
        out.push(Word {
            start: ws,
            end: i,
            text: word,
        });
    }
    Ok(out)
}

/// Variables a command references: `$NAME` as a whole word, `${NAME}` anywhere.
fn referenced_vars(words: &[Word]) -> Vec<String> {
    let mut vars = Vec::new();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for w in words {
        let t = &w.text;
        if let Some(rest) = t.strip_prefix('$') {
            if !rest.starts_with('{') && !rest.is_empty() && rest.chars().all(is_name) {
                vars.push(rest.to_string());
            }
        }
        let mut s = t.as_str();
        while let Some(i) = s.find("${") {
            s = &s[i + 2..];
            if let Some(close) = s.find('}') {
                vars.push(s[..close].to_string());
                s = &s[close..];
            } else {
                break;
            }
        }
    }
    vars
}

/// `--name=value` or `--name value`: the flag's name and, for the split form, the value's index.
fn flag_at(words: &[Word], i: usize, names: &[&str]) -> Option<(String, Option<usize>, String)> {
    let t = &words[i].text;
    for n in names {
        if let Some(v) = t.strip_prefix(n).and_then(|r| r.strip_prefix('=')) {
            return Some((n.to_string(), None, v.to_string()));
        }
        if t == n {
            if let Some(next) = words.get(i + 1).filter(|w| !w.text.starts_with("--")) {
                return Some((n.to_string(), Some(i + 1), next.text.clone()));
            }
            return Some((n.to_string(), None, "true".to_string()));
        }
    }
    None
}

/// Apply `edit` to a unit given as its files in systemd order. Returns the files that change
/// (index into `files`, new text); an empty list when the unit already says what `edit` wants.
pub fn edit_flags(
    unit: &str,
    files: &[UnitText],
    edit: &FlagEdit,
) -> Result<Vec<(usize, String)>, UnitEditError> {
    let list = || {
        files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut execs: Vec<ExecStart> = Vec::new();
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut env_files: Vec<String> = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let unsafe_ = |what: String| UnitEditError::Unsafe {
            path: f.path.clone(),
            what,
        };
        for (key, start, end) in service_settings(&f.text) {
            let value = f.text[start..end].trim();
            match key.as_str() {
                "ExecStart" if value.is_empty() => execs.clear(),
                "ExecStart" => execs.push(ExecStart {
                    file: fi,
                    start,
                    end,
                }),
                "Environment" if value.is_empty() => assignments.clear(),
                "Environment" => {
                    let ws = words(&f.text, start, end)
                        .map_err(|e| unsafe_(format!("an Environment= line with {e}")))?;
                    for w in ws {
                        let Some((var, val)) = w.text.split_once('=') else {
                            continue;
                        };
                        let quoted = f.text[w.start..w.end].starts_with('"')
                            && f.text[w.start..w.end].ends_with('"');
                        assignments.push(Assignment {
                            file: fi,
                            var: var.to_string(),
                            word_start: w.start,
                            word_end: w.end,
                            quoted,
                            value: val.to_string(),
                        });
                    }
                }
                "EnvironmentFile" if !value.is_empty() => env_files.push(value.to_string()),
                _ => {}
            }
        }
    }
    let exec = match execs.len() {
        0 => {
            return Err(UnitEditError::NoExecStart {
                unit: unit.into(),
                files: list(),
            })
        }
        1 => &execs[0],
        n => {
            return Err(UnitEditError::SeveralExecStart {
                unit: unit.into(),
                count: n,
                files: list(),
            })
        }
    };
    let text = &files[exec.file].text;
    let cmd = words(text, exec.start, exec.end).map_err(|e| UnitEditError::Unsafe {
        path: files[exec.file].path.clone(),
        what: format!("an ExecStart with {e}"),
    })?;
    let names: Vec<&str> = edit.names().collect();
    let vars = referenced_vars(&cmd);
    // The last assignment of each referenced variable is the one systemd uses.
    let mut env: Vec<&Assignment> = Vec::new();
    for v in &vars {
        if let Some(a) = assignments.iter().rev().find(|a| &a.var == v) {
            env.push(a);
        }
    }
    let in_exec = (0..cmd.len()).any(|i| flag_at(&cmd, i, &names).is_some());
    let in_env: Vec<&Assignment> = env
        .iter()
        .copied()
        .filter(|a| {
            let ws: Vec<&str> = a.value.split_whitespace().collect();
            ws.iter().any(|w| {
                names
                    .iter()
                    .any(|n| *w == *n || w.starts_with(&format!("{n}=")))
            })
        })
        .collect();
    if !in_exec && in_env.is_empty() && !env_files.is_empty() {
        if let Some(var) = vars.iter().find(|v| !env.iter().any(|a| &&a.var == v)) {
            return Err(UnitEditError::HiddenInEnvironmentFile {
                unit: unit.into(),
                var: var.clone(),
                env_files: env_files.join(", "),
                flags: names.join(" "),
            });
        }
    }
    // Every owned flag present anywhere, so a missing one is added once, in one place.
    let mut found: Vec<String> = (0..cmd.len())
        .filter_map(|i| flag_at(&cmd, i, &names).map(|(n, _, _)| n))
        .collect();
    for a in &in_env {
        for w in a.value.split_whitespace() {
            if let Some(n) = names
                .iter()
                .find(|n| w == **n || w.starts_with(&format!("{n}=")))
            {
                found.push(n.to_string());
            }
        }
    }
    let mut splices: Vec<Splice> = Vec::new();
    // The command line itself: each flag replaced or removed in place.
    for i in 0..cmd.len() {
        let Some((name, split, value)) = flag_at(&cmd, i, &names) else {
            continue;
        };
        let last = split.unwrap_or(i);
        let span = (cmd[i].start, cmd[last].end);
        if let Some((_, keep)) = edit.keep_if_present.iter().find(|(n, _)| *n == name) {
            if &value != keep {
                return Err(UnitEditError::Conflict {
                    path: files[exec.file].path.clone(),
                    flag: name,
                    found: value,
                    wanted: keep.clone(),
                });
            }
            continue;
        }
        match edit.wanted(&name) {
            Some(v) if v == value => {}
            Some(v) => splices.push(Splice {
                file: exec.file,
                start: span.0,
                end: span.1,
                with: format!("{name}={v}"),
            }),
            None => splices.push(remove_word(exec.file, text, span.0, span.1)),
        }
    }
    // Variables that carry the flags: their values rewritten (single spaces between words).
    for a in &in_env {
        let f = &files[a.file];
        if a.value.contains(['"', '\'', '\\']) {
            return Err(UnitEditError::Unsafe {
                path: f.path.clone(),
                what: format!("${} holds quotes or backslashes", a.var),
            });
        }
        let mut out: Vec<String> = Vec::new();
        let ws: Vec<&str> = a.value.split_whitespace().collect();
        let mut j = 0;
        while j < ws.len() {
            let w = ws[j];
            let hit = names.iter().find_map(|n| {
                if let Some(v) = w.strip_prefix(n).and_then(|r| r.strip_prefix('=')) {
                    Some((n.to_string(), v.to_string(), false))
                } else if w == *n {
                    ws.get(j + 1)
                        .filter(|x| !x.starts_with("--"))
                        .map(|x| (n.to_string(), x.to_string(), true))
                } else {
                    None
                }
            });
            let Some((name, value, split)) = hit else {
                out.push(w.to_string());
                j += 1;
                continue;
            };
            j += if split { 2 } else { 1 };
            if let Some((_, keep)) = edit.keep_if_present.iter().find(|(n, _)| *n == name) {
                if &value != keep {
                    return Err(UnitEditError::Conflict {
                        path: f.path.clone(),
                        flag: name,
                        found: value,
                        wanted: keep.clone(),
                    });
                }
                out.push(format!("{name}={value}"));
                continue;
            }
            if let Some(v) = edit.wanted(&name) {
                out.push(format!("{name}={v}"));
            }
        }
        if a.var == in_env[0].var {
            // Missing flags join the variable that already carries the network flags.
            for (n, v) in edit.set.iter().chain(edit.keep_if_present.iter()) {
                if !found.contains(n) {
                    out.push(format!("{n}={v}"));
                }
            }
        }
        let new_value = out.join(" ");
        if new_value != a.value {
            let word = format!("{}={new_value}", a.var);
            let with = if a.quoted || new_value.contains(' ') {
                format!("\"{word}\"")
            } else {
                word
            };
            splices.push(Splice {
                file: a.file,
                start: a.word_start,
                end: a.word_end,
                with,
            });
        }
    }
    // Flags found nowhere go on the command line (when no variable carries the others).
    if in_env.is_empty() {
        let missing: Vec<String> = edit
            .set
            .iter()
            .chain(edit.keep_if_present.iter())
            .filter(|(n, _)| !found.contains(n))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if !missing.is_empty() {
            splices.push(append_words(
                exec.file, text, exec.start, exec.end, &missing,
            ));
        }
    }
    let mut out = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let mut mine: Vec<&Splice> = splices.iter().filter(|s| s.file == fi).collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_by_key(|s| std::cmp::Reverse(s.start));
        let mut t = f.text.clone();
        for s in mine {
            t.replace_range(s.start..s.end, &s.with);
        }
        if t != f.text {
            out.push((fi, t));
        }
    }
    Ok(out)
}

/// Remove a word: its whole physical line when it stands alone there (a one-flag-per-line
/// unit), else the word and the blanks before it.
fn remove_word(file: usize, text: &str, start: usize, end: usize) -> Splice {
    let ls = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let le = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let rest = text[end..le].trim();
    let alone = text[ls..start].trim().is_empty() && (rest.is_empty() || rest == "\\");
    if alone && rest == "\\" && le < text.len() {
        return Splice {
            file,
            start: ls,
            end: le + 1,
            with: String::new(),
        };
    }
    if alone && rest.is_empty() && ls > 0 {
        // The last line of a continued command: the line before loses its backslash.
        let prev = text[..ls - 1].trim_end_matches([' ', '\t']);
        if let Some(p) = prev.strip_suffix('\\') {
            let cut = p.trim_end_matches([' ', '\t']).len();
            return Splice {
                file,
                start: cut,
                end: le,
                with: String::new(),
            };
        }
    }
    let mut s = start;
    while s > ls && matches!(text.as_bytes()[s - 1], b' ' | b'\t') {
        s -= 1;
    }
    Splice {
        file,
        start: s,
        end,
        with: String::new(),
    }
}

/// Append words to a command: one per continued line where the command is written that way.
fn append_words(file: usize, text: &str, start: usize, end: usize, add: &[String]) -> Splice {
    let cmd = &text[start..end];
    let with = match cmd.rfind('\n') {
        Some(i) => {
            let last = &cmd[i + 1..];
            let indent: String = last
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            add.iter()
                .map(|w| format!(" \\\n{indent}{w}"))
                .collect::<String>()
        }
        None => add.iter().map(|w| format!(" {w}")).collect::<String>(),
    };
    let at = start + cmd.trim_end_matches([' ', '\t']).len();
    Splice {
        file,
        start: at,
        end: at,
        with,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(path: &str, text: &str) -> Vec<UnitText> {
        vec![UnitText {
            path: path.into(),
            text: text.into(),
        }]
    }

    fn cni() -> FlagEdit {
        FlagEdit {
            set: vec![
                ("--network-plugin".into(), "cni".into()),
                ("--cni-conf-dir".into(), "/etc/cni/net.d".into()),
                ("--cni-bin-dir".into(), "/opt/cni/bin".into()),
            ],
            remove: vec![
                "--non-masquerade-cidr".into(),
                "--network-plugin-mtu".into(),
            ],
            keep_if_present: vec![],
        }
    }

    const HARD_WAY: &str = "[Unit]\nDescription=Kubernetes Kubelet\n\n[Service]\nExecStart=/usr/local/bin/kubelet \\\n  --allow-privileged=true \\\n  --network-plugin=kubenet \\\n  --non-masquerade-cidr=10.0.0.0/8 \\\n  --pod-cidr=10.200.1.0/24 \\\n  --tls-cert-file=/var/lib/kubelet/w.pem \\\n  --v=2\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn flags_on_continued_lines_are_changed_in_place() {
        let out = edit_flags("kubelet.service", &one("/u", HARD_WAY), &cni()).unwrap();
        assert_eq!(out.len(), 1);
        let want = HARD_WAY
            .replace("--network-plugin=kubenet", "--network-plugin=cni")
            .replace("  --non-masquerade-cidr=10.0.0.0/8 \\\n", "")
            .replace(
                "  --v=2\n",
                "  --v=2 \\\n  --cni-conf-dir=/etc/cni/net.d \\\n  --cni-bin-dir=/opt/cni/bin\n",
            );
        assert_eq!(out[0].1, want);
        // Idempotent.
        assert!(edit_flags("kubelet.service", &one("/u", &want), &cni())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_one_line_command_and_the_last_line_of_a_continued_one() {
        let text = "[Service]\nExecStart=/bin/kubelet --v=2 --network-plugin-mtu=1460\n";
        let out = edit_flags("k", &one("/u", text), &cni()).unwrap();
        assert_eq!(out[0].1, "[Service]\nExecStart=/bin/kubelet --v=2 --network-plugin=cni --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin\n");
        let text = "[Service]\nExecStart=/bin/kubelet \\\n  --v=2 \\\n  --network-plugin-mtu=1460\nRestart=always\n";
        let edit = FlagEdit {
            remove: vec!["--network-plugin-mtu".into()],
            ..FlagEdit::default()
        };
        let out = edit_flags("k", &one("/u", text), &edit).unwrap();
        assert_eq!(
            out[0].1,
            "[Service]\nExecStart=/bin/kubelet \\\n  --v=2\nRestart=always\n"
        );
    }

    #[test]
    fn the_last_execstart_after_a_reset_in_a_drop_in_wins() {
        let files = vec![
            UnitText {
                path: "/etc/systemd/system/kubelet.service".into(),
                text: "[Service]\nExecStart=/usr/bin/kubelet --network-plugin=kubenet\n".into(),
            },
            UnitText {
                path: "/etc/systemd/system/kubelet.service.d/20-site.conf".into(),
                text: "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --network-plugin kubenet --v=4\n".into(),
            },
        ];
        let out = edit_flags("kubelet.service", &files, &cni()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 1, "the drop-in defines the command");
        assert_eq!(out[0].1, "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --network-plugin=cni --v=4 --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin\n");
        // Without the reset there are two commands: refused.
        let mut two = files.clone();
        two[1].text = "[Service]\nExecStart=/usr/bin/kubelet --v=4\n".into();
        assert!(matches!(
            edit_flags("kubelet.service", &two, &cni()),
            Err(UnitEditError::SeveralExecStart { count: 2, .. })
        ));
    }

    /// kubeadm 1.10's drop-in: the network flags are in $KUBELET_NETWORK_ARGS.
    #[test]
    fn flags_in_an_environment_variable_are_edited_there() {
        let dropin = "[Service]\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\nEnvironment=\"KUBELET_NETWORK_ARGS=--network-plugin=kubenet --cni-bin-dir=/opt/cni/bin\"\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_NETWORK_ARGS $KUBELET_EXTRA_ARGS\n";
        let files = vec![
            UnitText {
                path: "/lib/systemd/system/kubelet.service".into(),
                text: "[Service]\nExecStart=/usr/bin/kubelet\n".into(),
            },
            UnitText {
                path: "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf".into(),
                text: dropin.into(),
            },
        ];
        let out = edit_flags("kubelet.service", &files, &cni()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 1);
        assert_eq!(
            out[0].1,
            dropin.replace(
                "KUBELET_NETWORK_ARGS=--network-plugin=kubenet --cni-bin-dir=/opt/cni/bin",
                "KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d"
            )
        );
        let mut again = files.clone();
        again[1].text = out[0].1.clone();
        assert!(edit_flags("kubelet.service", &again, &cni())
            .unwrap()
            .is_empty());
    }

    /// kubeadm 1.11+: flags in /var/lib/kubelet/kubeadm-flags.env, which netctl does not edit.
    #[test]
    fn flags_that_may_hide_in_an_environment_file_are_refused() {
        let dropin = "[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS\n";
        let e = edit_flags("kubelet.service", &one("/d.conf", dropin), &cni()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("$KUBELET_KUBEADM_ARGS")
                && msg.contains("/var/lib/kubelet/kubeadm-flags.env")
                && msg.contains("kubernetes.units: own"),
            "{msg}"
        );
    }

    #[test]
    fn what_cannot_be_read_safely_is_refused() {
        let no_exec = "[Service]\nRestart=always\n";
        assert!(matches!(
            edit_flags("k", &one("/u", no_exec), &cni()),
            Err(UnitEditError::NoExecStart { .. })
        ));
        let quote = "[Service]\nExecStart=/bin/kubelet \"--v=2\n";
        assert!(matches!(
            edit_flags("k", &one("/u", quote), &cni()),
            Err(UnitEditError::Unsafe { .. })
        ));
        // ExecStart outside [Service] is not a command.
        let wrong = "[Unit]\nExecStart=/bin/x\n";
        assert!(matches!(
            edit_flags("k", &one("/u", wrong), &cni()),
            Err(UnitEditError::NoExecStart { .. })
        ));
    }

    #[test]
    fn keep_if_present_adds_when_absent_and_refuses_a_different_value() {
        let edit = FlagEdit {
            keep_if_present: vec![("--service-cluster-ip-range".into(), "10.32.0.0/24".into())],
            ..FlagEdit::default()
        };
        let text = "[Service]\nExecStart=/bin/kcm --v=2\n";
        let out = edit_flags("k", &one("/u", text), &edit).unwrap();
        assert_eq!(
            out[0].1,
            "[Service]\nExecStart=/bin/kcm --v=2 --service-cluster-ip-range=10.32.0.0/24\n"
        );
        let same = "[Service]\nExecStart=/bin/kcm --service-cluster-ip-range=10.32.0.0/24\n";
        assert!(edit_flags("k", &one("/u", same), &edit).unwrap().is_empty());
        let other = "[Service]\nExecStart=/bin/kcm --service-cluster-ip-range=10.96.0.0/12\n";
        let e = edit_flags("k", &one("/u", other), &edit).unwrap_err();
        assert!(
            e.to_string().contains(
                "--service-cluster-ip-range=10.96.0.0/12, but the profile says 10.32.0.0/24"
            ),
            "{e}"
        );
    }
}

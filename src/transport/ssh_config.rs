//! The subset of OpenSSH's client configuration (~/.ssh/config) that decides how a node is reached.
//!
//! Why: operators already describe their fleet there (jump hosts, users, keys); a provisioner that ignores
//! it is the top complaint against k0sctl and friends. Semantics follow ssh_config(5): `Host` blocks whose
//! patterns (`*`, `?`, `!negation`) match, read top to bottom, and for each option the FIRST value found
//! wins (IdentityFile accumulates, as in OpenSSH). Options before any `Host` line apply to every host.
//! `Include` is followed as OpenSSH does for a user config (relative paths under ~/.ssh, `~`, `*`/`?`
//! in the file name, lexical order, missing files ignored, conditional inside a `Host` block, at most
//! 16 deep). `Match` blocks are never applied (their conditions are not evaluated).
//! docs/ssh.md lists what is honoured.

use std::path::{Path, PathBuf};

use super::read::{read_regular_text, ReadError, MAX_SSH_FILE};
// The jump syntax is the profile's (it checks `ssh.bastion`); connections use it from here.
pub use crate::profile::jump::{parse_jump, JumpSpec};

/// A parsed config file: its blocks in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
struct Block {
    /// Pattern lists that must all match (a `Host` line, and those of the `Host` blocks that
    /// `Include`d it). None: a `Match` block, or one included from it (never applied).
    conditions: Option<Vec<Vec<Pattern>>>,
    options: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    negated: bool,
    glob: String,
}

/// What the config says about one host. Every field is None (or empty) when the config is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// In order; `~` and `%d`/`%h`/`%r`/`%u`/`%%` are expanded by `expand`.
    pub identity_files: Vec<String>,
    pub proxy_jump: Option<String>,
    /// The raw command (tokens unexpanded; see `expand_command`).
    pub proxy_command: Option<String>,
    pub user_known_hosts_file: Option<String>,
    pub global_known_hosts_file: Option<String>,
    pub strict_host_key_checking: Option<String>,
    pub identity_agent: Option<String>,
    pub connect_timeout: Option<u64>,
}

impl HostOptions {
    /// `StrictHostKeyChecking no` / `accept-new`: record unknown keys. (A changed key is still refused.)
    pub fn accepts_new_keys(&self) -> bool {
        matches!(
            self.strict_host_key_checking
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("no" | "off" | "accept-new")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// OpenSSH stops following `Include` at this depth (READCONF_MAX_DEPTH).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Read and parse a config file, and the files it includes.
pub fn load(path: &Path) -> Result<SshConfig, SshConfigError> {
    let mut blocks = vec![all_hosts()];
    read_file(path, Some(Vec::new()), 0, &mut blocks)?;
    Ok(SshConfig { blocks })
}

/// Parse config text; an error is (1-based line, message). Includes are read from disk.
pub fn parse(text: &str) -> Result<SshConfig, (usize, String)> {
    let mut blocks = vec![all_hosts()];
    read_text(text, Path::new("config"), Some(Vec::new()), 0, &mut blocks).map_err(
        |e| match e {
            SshConfigError::Syntax { line, message, .. } => (line, message),
            other => (0, other.to_string()),
        },
    )?;
    Ok(SshConfig { blocks })
}

/// Options before the first Host line apply to all hosts.
fn all_hosts() -> Block {
    Block {
        conditions: Some(Vec::new()),
        options: Vec::new(),
    }
}

fn read_file(
    path: &Path,
    outer: Option<Vec<Vec<Pattern>>>,
    depth: usize,
    blocks: &mut Vec<Block>,
) -> Result<(), SshConfigError> {
    // A FIFO or /dev/zero named as the config or an Include is an error, not a hang.
    let text = read_regular_text(path, MAX_SSH_FILE).map_err(|source| SshConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    read_text(&text, path, outer, depth, blocks)
}

/// Append the blocks of `text`. `outer` is the condition of the block that included it: every
/// block of this file applies only where that one does.
fn read_text(
    text: &str,
    path: &Path,
    outer: Option<Vec<Vec<Pattern>>>,
    depth: usize,
    blocks: &mut Vec<Block>,
) -> Result<(), SshConfigError> {
    let syntax = |line: usize, message: String| SshConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    if depth > 0 {
        blocks.push(Block {
            conditions: outer.clone(),
            options: Vec::new(),
        });
    }
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (written, rest) = split_keyword(line);
        let keyword = written.to_ascii_lowercase();
        // ProxyCommand's value is the rest of the line, for the shell (quotes and all).
        let args = if keyword == "proxycommand" {
            Some(rest.trim().to_string())
                .filter(|r| !r.is_empty())
                .into_iter()
                .collect()
        } else {
            split_args(rest).map_err(|m| syntax(index + 1, m))?
        };
        match keyword.as_str() {
            "host" => {
                if args.is_empty() {
                    return Err(syntax(index + 1, "Host needs at least one pattern".into()));
                }
                let patterns = args
                    .iter()
                    .map(|a| match a.strip_prefix('!') {
                        Some(glob) => Pattern {
                            negated: true,
                            glob: glob.to_ascii_lowercase(),
                        },
                        None => Pattern {
                            negated: false,
                            glob: a.to_ascii_lowercase(),
                        },
                    })
                    .collect();
                blocks.push(Block {
                    conditions: outer.clone().map(|mut c| {
                        c.push(patterns);
                        c
                    }),
                    options: Vec::new(),
                });
            }
            "match" => blocks.push(Block {
                conditions: None,
                options: Vec::new(),
            }),
            "include" => {
                if args.is_empty() {
                    return Err(syntax(index + 1, "Include needs a file".into()));
                }
                if depth + 1 >= MAX_INCLUDE_DEPTH {
                    return Err(syntax(
                        index + 1,
                        format!("Include nested more than {MAX_INCLUDE_DEPTH} deep"),
                    ));
                }
                let here = blocks
                    .last()
                    .expect("there is always a block")
                    .conditions
                    .clone();
                for file in include_targets(&args).map_err(|m| syntax(index + 1, m))? {
                    read_file(&file, here.clone(), depth + 1, blocks)?;
                }
                // Back in this file: what follows still belongs to the block that included.
                blocks.push(Block {
                    conditions: here,
                    options: Vec::new(),
                });
            }
            _ => {
                if args.is_empty() {
                    return Err(syntax(index + 1, format!("{written} needs a value")));
                }
                blocks
                    .last_mut()
                    .expect("there is always a block")
                    .options
                    .push((keyword, args));
            }
        }
    }
    Ok(())
}

/// The files an `Include` line names, in order: `~` expanded, relative paths under ~/.ssh, and
/// `*`/`?` in a file name matched against its directory in lexical order (no match, no file).
/// Missing files and directories are skipped (OpenSSH reads nothing from them); anything else that
/// exists is returned, so that reading refuses what is not a regular file (a FIFO would hang).
fn include_targets(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for a in args {
        let p = if a.starts_with("~/") || a.starts_with('/') {
            crate::profile::expand_home(a)
        } else {
            crate::profile::expand_home(&format!("~/.ssh/{a}"))
        };
        let (dir, name) = match (p.parent(), p.file_name().and_then(|n| n.to_str())) {
            (Some(d), Some(n)) => (d.to_path_buf(), n.to_string()),
            _ => return Err(format!("Include {a:?}: not a file path")),
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(format!(
                "Include {a:?}: wildcards are followed in the file name only"
            ));
        }
        if !name.contains(['*', '?']) {
            if exists_not_dir(&p) {
                out.push(p);
            }
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        !n.starts_with('.') && glob_match(&name, &n)
                    })
                    .map(|e| e.path())
                    .filter(|p| exists_not_dir(p))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn exists_not_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_dir())
}

/// `Keyword value` or `Keyword=value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (keyword, rest)
}

/// Whitespace-separated arguments; double quotes group (as in OpenSSH).
fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    args.push(std::mem::take(&mut current));
                    in_arg = false;
                }
            }
            c => {
                current.push(c);
                in_arg = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if in_arg {
        args.push(current);
    }
    Ok(args)
}

impl SshConfig {
    /// The options for a host known by any of `names` (netctl passes a node's name and its address).
    /// A block applies when one of its patterns matches one of the names and no negated pattern
    /// matches any of them.
    pub fn lookup(&self, names: &[&str]) -> HostOptions {
        let names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut o = HostOptions::default();
        let applies = |patterns: &Vec<Pattern>| {
            let hit = |p: &Pattern| names.iter().any(|n| glob_match(&p.glob, n));
            let negated = patterns.iter().filter(|p| p.negated).any(hit);
            let positive = patterns.iter().filter(|p| !p.negated).any(hit);
            positive && !negated
        };
        for block in &self.blocks {
            let Some(conditions) = &block.conditions else {
                continue;
            };
            if !conditions.iter().all(applies) {
                continue;
            }
            for (key, args) in &block.options {
                let first = || Some(args[0].clone());
                match key.as_str() {
                    "hostname" => set(&mut o.host_name, first()),
                    "user" => set(&mut o.user, first()),
                    "port" => set(&mut o.port, args[0].parse().ok()),
                    "identityfile" => o.identity_files.push(args[0].clone()),
                    "proxyjump" => set(&mut o.proxy_jump, first()),
                    "proxycommand" => set(&mut o.proxy_command, first()),
                    "userknownhostsfile" => set(&mut o.user_known_hosts_file, first()),
                    "globalknownhostsfile" => set(&mut o.global_known_hosts_file, first()),
                    "stricthostkeychecking" => set(&mut o.strict_host_key_checking, first()),
                    "identityagent" => set(&mut o.identity_agent, first()),
                    "connecttimeout" => set(&mut o.connect_timeout, args[0].parse().ok()),
                    _ => {}
                }
            }
        }
        o
    }
}

/// First value wins.
fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// OpenSSH's host patterns: `*` any run of characters, `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Expand `~/` and the tokens OpenSSH allows in file options: %d (home), %h (remote host),
/// %r (remote user), %u (local user), %% (a percent sign).
pub fn expand(value: &str, host: &str, remote_user: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let local_user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    expand_with(value, host, remote_user, &home, &local_user)
}

fn expand_with(
    value: &str,
    host: &str,
    remote_user: &str,
    home: &str,
    local_user: &str,
) -> PathBuf {
    let out = expand_tokens(
        value,
        &[
            ('d', home),
            ('h', host),
            ('r', remote_user),
            ('u', local_user),
        ],
    );
    match out.strip_prefix("~/") {
        Some(rest) if !home.is_empty() => Path::new(home).join(rest),
        _ => PathBuf::from(out),
    }
}

/// ProxyCommand's tokens: %h host, %p port, %r remote user, %n the name as given, %% a percent.
pub fn expand_command(cmd: &str, host: &str, port: u16, remote_user: &str, name: &str) -> String {
    let port = port.to_string();
    expand_tokens(
        cmd,
        &[('h', host), ('p', &port), ('r', remote_user), ('n', name)],
    )
}

/// `%x` replaced by its value from `tokens`, `%%` by `%`; an unknown token is left as it is.
fn expand_tokens(value: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push('%');
                    out.push(t);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# global defaults
ConnectTimeout 7

Host bastion-*
    User jump
    Port 2222

Host n1-alias node-?
    HostName 10.0.0.11
    User=ops
    IdentityFile ~/.ssh/ops_key
    IdentityFile \"/keys/with space\"

Host * !10.0.0.13
    User fallback
    ProxyJump bastion-1
    StrictHostKeyChecking accept-new
    IdentityFile ~/.ssh/id_ed25519

Match host n1-alias
    User never
";

    #[test]
    fn first_match_wins_and_identity_files_accumulate() {
        let c = parse(CONFIG).unwrap();
        let o = c.lookup(&["n1-alias", "10.0.0.11"]);
        assert_eq!(o.host_name.as_deref(), Some("10.0.0.11"));
        assert_eq!(
            o.user.as_deref(),
            Some("ops"),
            "first User wins; Match is not applied"
        );
        assert_eq!(o.connect_timeout, Some(7));
        assert_eq!(o.proxy_jump.as_deref(), Some("bastion-1"));
        assert_eq!(
            o.identity_files,
            vec!["~/.ssh/ops_key", "/keys/with space", "~/.ssh/id_ed25519"]
        );
        assert!(o.accepts_new_keys());
        assert_eq!(o.port, None);
    }

    #[test]
    fn patterns_negation_and_question_mark() {
        let c = parse(CONFIG).unwrap();
        // node-? matches one character only.
        assert_eq!(
            c.lookup(&["node-12", "10.0.0.12"]).user.as_deref(),
            Some("fallback")
        );
        assert_eq!(
            c.lookup(&["node-1", "10.0.0.12"]).user.as_deref(),
            Some("ops")
        );
        // A negated pattern matching the address removes the whole block.
        let o = c.lookup(&["worker", "10.0.0.13"]);
        assert_eq!(o.user, None);
        assert_eq!(o.proxy_jump, None);
        assert!(!o.accepts_new_keys());
        let b = c.lookup(&["bastion-1"]);
        assert_eq!((b.user.as_deref(), b.port), (Some("jump"), Some(2222)));
        // Host matching is case-insensitive, as in OpenSSH.
        assert_eq!(c.lookup(&["N1-ALIAS"]).user.as_deref(), Some("ops"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(parse("Host\n").unwrap_err().0, 1);
        assert_eq!(parse("Host a\n  User\n").unwrap_err().0, 2);
        assert_eq!(parse("Host a\n IdentityFile \"x\n").unwrap_err().0, 2);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("10.0.*.1?", "10.0.5.12"));
        assert!(!glob_match("10.0.*.1?", "10.0.5.1"));
        assert!(glob_match("*.example.com", "a.b.example.com"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn tokens_and_home() {
        assert_eq!(
            expand_with("~/.ssh/%h-%r-%u-100%%", "h1", "ops", "/home/t", "me"),
            PathBuf::from("/home/t/.ssh/h1-ops-me-100%")
        );
        assert_eq!(
            expand_with("%d/k", "h", "u", "/home/t", "me"),
            PathBuf::from("/home/t/k")
        );
    }

    #[test]
    fn proxy_command_keeps_the_raw_line_and_expands_tokens() {
        let c =
            parse("Host n1\n  ProxyCommand sh -c \"nc %h %p\" # %r %n %%\n  ProxyCommand second\n")
                .unwrap();
        let cmd = c.lookup(&["n1"]).proxy_command.unwrap();
        assert_eq!(cmd, "sh -c \"nc %h %p\" # %r %n %%");
        assert_eq!(
            expand_command(&cmd, "10.0.0.1", 2222, "ops", "n1"),
            "sh -c \"nc 10.0.0.1 2222\" # ops n1 %"
        );
        assert!(parse("Host n1\n  ProxyCommand\n").is_err());
    }

    /// Include: absolute and glob targets in lexical order, conditional inside a Host block,
    /// the including block continuing after it, missing files ignored, errors naming the file.
    #[test]
    fn includes_are_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("config.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("20-b"), "Host n1\n  User from-b\n  Port 2202\n").unwrap();
        std::fs::write(d.join("10-a"), "Host n1\n  User from-a\n").unwrap();
        std::fs::write(d.join(".hidden"), "Host n1\n  User hidden\n").unwrap();
        std::fs::write(
            t.path().join("jump"),
            "HostName 10.9.9.9\nHost n1\n  IdentityFile /k/n1\n",
        )
        .unwrap();
        let main = t.path().join("config");
        std::fs::write(
            &main,
            format!(
                "Include {}/* {}/missing\n\
                 Host bastion\n  Include {}\n  User jumper\n\
                 Host *\n  User fallback\n",
                d.display(),
                t.path().display(),
                t.path().join("jump").display()
            ),
        )
        .unwrap();
        let c = load(&main).unwrap();
        let n1 = c.lookup(&["n1"]);
        assert_eq!(
            n1.user.as_deref(),
            Some("from-a"),
            "lexical order, first wins"
        );
        assert_eq!(n1.port, Some(2202));
        assert_eq!(n1.host_name, None, "included inside Host bastion only");
        assert!(
            n1.identity_files.is_empty(),
            "Host n1 inside bastion's include needs both"
        );
        let b = c.lookup(&["bastion"]);
        assert_eq!(b.host_name.as_deref(), Some("10.9.9.9"));
        assert_eq!(
            b.user.as_deref(),
            Some("jumper"),
            "the including block goes on"
        );
        assert_eq!(c.lookup(&["other"]).user.as_deref(), Some("fallback"));

        std::fs::write(d.join("30-bad"), "Host\n").unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert!(
            e.contains("30-bad:1: Host needs at least one pattern"),
            "{e}"
        );
        std::fs::write(d.join("30-bad"), format!("Include {}\n", main.display())).unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert!(e.contains("nested more than 16 deep"), "{e}");
    }

    /// A FIFO (would block) or /dev/zero (never ends) as the config or an Include: an error naming
    /// it, not a hang; a directory matched by an Include glob is skipped, as OpenSSH reads nothing.
    #[test]
    fn non_regular_files_are_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for path in [fifo.as_path(), Path::new("/dev/zero")] {
            let e = load(path).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "cannot read ssh config {}: not a regular file",
                    path.display()
                )),
                "{e}"
            );
            let main = t.path().join("config");
            std::fs::write(&main, format!("Host a\n  Include {}\n", path.display())).unwrap();
            let e = load(&main).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{}: not a regular file", path.display())),
                "{e}"
            );
        }
        let d = t.path().join("conf.d");
        std::fs::create_dir_all(d.join("subdir")).unwrap();
        std::fs::write(d.join("a"), "User from-a\n").unwrap();
        let main = t.path().join("config2");
        std::fs::write(&main, format!("Include {}/*\n", d.display())).unwrap();
        assert_eq!(
            load(&main).unwrap().lookup(&["x"]).user.as_deref(),
            Some("from-a")
        );
        // The keyword as written names the problem.
        assert_eq!(
            parse("Host a\n  IdentityFile\n").unwrap_err(),
            (2, "IdentityFile needs a value".to_string())
        );
    }
}

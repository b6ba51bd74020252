//! The upload script: one `sh` program, fed on stdin to one remote shell, that replaces many files atomically.
//!
//! A pure function so it can be tested without a node. Shape of the generated script:
//! 1. prepare, per file: refuse a directory target, `mkdir -p` the parent, `mktemp` in the same directory,
//!    decode the base64 content from a quoted here-document into it, chown, chmod, fsync;
//! 2. back up, per file that exists: `cp -a` to `<backup_dir><path>` (kept if already there, so the first
//!    backup of a run, the original, wins), fsync;
//! 3. commit, per file: `mv -fT` (rename(2)) the temp file over the path, fsync the directory.
//!
//! Any failure removes the temp files not yet renamed, prints `netctl-upload-failed <index> <step>` on stderr and
//! exits 1, so no rename after the failing step happens. Nothing from paths, owners or contents reaches the shell
//! unquoted: paths and owners go through `sh_quote`, contents are base64 inside a quoted here-document, and the
//! whole program is one function body, so a truncated script is a syntax error and runs nothing.

use base64::Engine;

use super::{sh_quote, Upload};

/// Marker printed on stdout when every file was replaced.
pub(crate) const OK_MARKER: &str = "netctl-upload-ok";
/// Prefix of the failure line on stderr: `netctl-upload-failed <index> <step>`.
pub(crate) const FAIL_MARKER: &str = "netctl-upload-failed";
const HEREDOC_END: &str = "NETCTL_B64_END";

/// Why an upload request was rejected before anything was sent: (path, reason).
pub(crate) type Invalid = (String, String);

pub(crate) fn build_script(files: &[Upload], backup_dir: Option<&str>) -> Result<String, Invalid> {
    let backup_root = match backup_dir {
        Some(dir) => {
            check_path(dir)
                .map_err(|reason| (dir.to_string(), format!("backup directory: {reason}")))?;
            if dir.trim_end_matches('/').is_empty() {
                return Err((dir.to_string(), "backup directory must not be /".into()));
            }
            Some(dir.trim_end_matches('/'))
        }
        None => None,
    };
    let mut seen = std::collections::HashSet::new();
    for file in files {
        check_path(&file.path).map_err(|reason| (file.path.clone(), reason))?;
        if file.path.ends_with('/') {
            return Err((
                file.path.clone(),
                "path must name a file, not end with /".into(),
            ));
        }
        if !seen.insert(file.path.as_str()) {
            return Err((file.path.clone(), "path appears twice in one upload".into()));
        }
        if file.mode > 0o7777 {
            return Err((
                file.path.clone(),
                format!("mode {:o} is not a permission mode", file.mode),
            ));
        }
        if let Some(owner) = &file.owner {
            if owner.is_empty() || owner.chars().any(|c| c.is_control()) {
                return Err((file.path.clone(), format!("invalid owner {owner:?}")));
            }
        }
    }

    let mut s = String::new();
    s.push_str("# netctl upload script (generated)\nnetctl_upload() {\numask 077\n");
    let temps: Vec<String> = (0..files.len()).map(|i| format!("\"$t{i}\"")).collect();
    for i in 0..files.len() {
        s.push_str(&format!("t{i}=\n"));
    }
    s.push_str(&format!(
        "fail() {{\n  rm -f -- {} 2>/dev/null\n  printf '{FAIL_MARKER} %s %s\\n' \"$1\" \"$2\" >&2\n  exit 1\n}}\n",
        temps.join(" ")
    ));

    // 1. prepare
    for (i, file) in files.iter().enumerate() {
        let path = sh_quote(&file.path);
        let parent = sh_quote(parent_of(&file.path));
        s.push_str(&format!("# file {i}\np{i}={path}\nd{i}={parent}\n"));
        s.push_str(&format!(
            "if [ -d \"$p{i}\" ] && [ ! -L \"$p{i}\" ]; then echo \"$p{i} is a directory\" >&2; fail {i} 'check target'; fi\n"
        ));
        s.push_str(&format!(
            "mkdir -p -- \"$d{i}\" || fail {i} 'create parent directory'\n"
        ));
        s.push_str(&format!(
            "t{i}=$(mktemp -- \"$d{i}/.netctl-upload.XXXXXX\") || fail {i} 'create temp file'\n"
        ));
        s.push_str(&format!(
            "base64 -d > \"$t{i}\" <<'{HEREDOC_END}' || fail {i} 'write temp file'\n"
        ));
        push_base64_lines(&mut s, &file.content);
        s.push_str(HEREDOC_END);
        s.push('\n');
        if let Some(owner) = &file.owner {
            s.push_str(&format!(
                "chown -- {} \"$t{i}\" || fail {i} 'chown'\n",
                sh_quote(owner)
            ));
        }
        s.push_str(&format!(
            "chmod {:04o} -- \"$t{i}\" || fail {i} 'chmod'\n",
            file.mode
        ));
        s.push_str(&format!(
            "sync -- \"$t{i}\" || fail {i} 'fsync temp file'\n"
        ));
    }

    // 2. back up what will be replaced
    if let Some(root) = backup_root {
        for (i, file) in files.iter().enumerate() {
            let backup = format!("{root}{}", file.path);
            let backup_q = sh_quote(&backup);
            let backup_parent = sh_quote(parent_of(&backup));
            s.push_str(&format!(
                "if {{ [ -e \"$p{i}\" ] || [ -L \"$p{i}\" ]; }} && [ ! -e {backup_q} ] && [ ! -L {backup_q} ]; then\n  \
                 mkdir -p -- {backup_parent} && cp -a -- \"$p{i}\" {backup_q} && sync -- {backup_q} || fail {i} 'back up existing file'\nfi\n"
            ));
        }
    }

    // 3. commit
    for i in 0..files.len() {
        s.push_str(&format!(
            "mv -fT -- \"$t{i}\" \"$p{i}\" || fail {i} 'rename into place'\nt{i}=\n"
        ));
        s.push_str(&format!("sync -- \"$d{i}\" 2>/dev/null || :\n"));
    }
    s.push_str(&format!("echo {OK_MARKER}\n}}\nnetctl_upload\n"));
    Ok(s)
}

/// Find the failure line the script prints: (file index, step, the other stderr lines).
pub(crate) fn parse_failure(stderr: &[u8]) -> Option<(usize, String, String)> {
    let text = String::from_utf8_lossy(stderr);
    let mut found = None;
    let mut detail = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix(FAIL_MARKER)
            .and_then(|r| r.strip_prefix(' '))
        {
            if let Some((index, step)) = rest.split_once(' ') {
                if let Ok(index) = index.parse::<usize>() {
                    found = Some((index, step.to_string()));
                    continue;
                }
            }
        }
        if !line.trim().is_empty() {
            detail.push(line.trim().to_string());
        }
    }
    found.map(|(index, step)| (index, step, detail.join("; ")))
}

/// A path netctl may write or remove on a node: absolute, normal, no control characters. Shared by
/// uploads, the node transaction (phase/txn.rs) and the switch record read back from a node.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("path must be absolute".into());
    }
    if path.chars().any(|c| c.is_control()) {
        return Err("path contains a control character".into());
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|part| part.is_empty() || part == "." || part == "..")
        && !trimmed.is_empty()
    {
        return Err("path must be normalised (no empty, . or .. components)".into());
    }
    Ok(())
}

fn parent_of(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

fn push_base64_lines(s: &mut String, content: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    for chunk in encoded.as_bytes().chunks(76) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> Upload {
        Upload {
            path: path.into(),
            content: content.to_vec(),
            mode: 0o644,
            owner: None,
        }
    }

    #[test]
    fn paths_with_spaces_and_quotes_are_quoted() {
        let nasty = "/etc/cni/net.d/it's a \"test\" $(reboot) `id`.conf";
        let script =
            build_script(&[file(nasty, b"x")], Some("/var/lib/netctl/backups/run 1")).unwrap();
        assert!(
            script.contains(&format!("p0={}\n", sh_quote(nasty))),
            "{script}"
        );
        assert!(script.contains("d0=/etc/cni/net.d\n"), "{script}");
        let backup = sh_quote(&format!("/var/lib/netctl/backups/run 1{nasty}"));
        assert!(
            script.contains(&format!("cp -a -- \"$p0\" {backup}")),
            "{script}"
        );
        // The raw path appears only inside single quotes.
        for line in script.lines().filter(|l| l.contains("$(reboot)")) {
            assert!(line.contains("'"), "unquoted: {line}");
        }
    }

    #[test]
    fn contents_are_base64_in_a_quoted_heredoc() {
        let content = b"line1\n$(evil) `evil` 'q' \"dq\"\nNETCTL_B64_END\n".repeat(10);
        let script = build_script(&[file("/a/b", &content)], None).unwrap();
        assert!(!script.contains("$(evil)"));
        assert!(script.contains("<<'NETCTL_B64_END'"));
        let start = script.find("<<'NETCTL_B64_END'").unwrap();
        let body_start = script[start..].find('\n').unwrap() + start + 1;
        let body_end = script[body_start..].find("\nNETCTL_B64_END\n").unwrap() + body_start;
        let body: String = script[body_start..body_end].lines().collect();
        assert!(script[body_start..body_end].lines().all(|l| l.len() <= 76));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(decoded, content);
    }

    #[test]
    fn mode_owner_and_order_of_steps() {
        let mut f = file("/etc/x.conf", b"");
        f.mode = 0o600;
        f.owner = Some("root:root".into());
        let script = build_script(&[f, file("/y", b"1")], Some("/b/")).unwrap();
        assert!(script.contains("chmod 0600 -- \"$t0\""));
        assert!(script.contains("chown -- root:root \"$t0\""));
        assert!(script.contains("d1=/\n"));
        assert!(script.contains("cp -a -- \"$p0\" /b/etc/x.conf"));
        // every temp file is written before any backup, every backup before any rename
        let last_write = script.rfind("base64 -d").unwrap();
        let first_backup = script.find("cp -a").unwrap();
        let last_backup = script.rfind("cp -a").unwrap();
        let first_rename = script.find("mv -fT").unwrap();
        assert!(last_write < first_backup && last_backup < first_rename);
        // the program is one function, run at the very end
        assert!(script.trim_end().ends_with("}\nnetctl_upload"));
    }

    #[test]
    fn invalid_requests_are_rejected() {
        assert!(build_script(&[file("relative/path", b"")], None).is_err());
        assert!(build_script(&[file("/a/../etc/passwd", b"")], None).is_err());
        assert!(build_script(&[file("/a//b", b"")], None).is_err());
        assert!(build_script(&[file("/a/", b"")], None).is_err());
        assert!(build_script(&[file("/a\nb", b"")], None).is_err());
        assert!(build_script(&[file("/a", b""), file("/a", b"")], None).is_err());
        assert!(build_script(&[file("/a", b"")], Some("/")).is_err());
        assert!(build_script(&[file("/a", b"")], Some("rel")).is_err());
        let mut bad_mode = file("/a", b"");
        bad_mode.mode = 0o10000;
        assert!(build_script(&[bad_mode], None).is_err());
        let (path, _) = build_script(&[file("/ok", b""), file("x", b"")], None).unwrap_err();
        assert_eq!(path, "x");
    }

    #[test]
    fn failure_line_is_parsed() {
        let stderr = b"mkdir: cannot create directory '/x': Permission denied\nnetctl-upload-failed 2 create parent directory\n";
        let (index, step, detail) = parse_failure(stderr).unwrap();
        assert_eq!(index, 2);
        assert_eq!(step, "create parent directory");
        assert!(detail.contains("Permission denied"));
        assert!(parse_failure(b"something else").is_none());
    }

    #[test]
    fn parent_directories() {
        assert_eq!(parent_of("/a/b/c"), "/a/b");
        assert_eq!(parent_of("/c"), "/");
    }
}

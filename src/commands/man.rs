//! `netctl man [DIR]`: manual pages rendered from the clap definitions that also make `--help`
//! and the completions, so the three cannot drift apart.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManError {
    #[error("man: {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One page per command and subcommand, named as man(1) finds them: `netctl.1`,
/// `netctl-init.1`, `netctl-profile-check.1`, ... (hidden commands and clap's `help` have none).
pub fn pages(cli: clap::Command) -> Vec<(String, clap_mangen::Man)> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, clap_mangen::Man)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out);
        }
        let man = with_source(clap_mangen::Man::new(cmd));
        out.push((man.get_filename(), man));
    }
    // build() names each subcommand `netctl-init` (its display name), as clap's own help does.
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut out = Vec::new();
    walk(cli, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The footer names netctl's release on every page (clap_mangen's default is the
/// subcommand's name: "init 0.1.0").
fn with_source(man: clap_mangen::Man) -> clap_mangen::Man {
    man.source(format!("netctl {}", env!("CARGO_PKG_VERSION")))
}

/// A page, as roff.
pub fn render(man: &clap_mangen::Man) -> Vec<u8> {
    let mut page = Vec::new();
    man.render(&mut page)
        .expect("rendering into memory does not fail");
    page
}

/// The top command's page (`netctl.1`), as roff.
pub fn top(cli: clap::Command) -> String {
    let page = render(&with_source(clap_mangen::Man::new(
        cli.disable_help_subcommand(true),
    )));
    String::from_utf8(page).expect("clap's text is UTF-8")
}

/// Writes every page into `dir` (which must exist: man1 directories are the installer's to
/// make); returns the paths written, in order.
pub fn write_all(cli: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ManError> {
    let mut written = Vec::new();
    for (name, man) in pages(cli) {
        let path = dir.join(name);
        std::fs::write(&path, render(&man)).map_err(|source| ManError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("tool")
            .about("A tool")
            .subcommand(
                clap::Command::new("group")
                    .about("A group")
                    .subcommand(clap::Command::new("leaf").about("A leaf")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn a_page_per_visible_command_named_by_its_path() {
        let names: Vec<String> = pages(cli()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["tool-group-leaf.1", "tool-group.1", "tool.1"]);
    }

    #[test]
    fn a_directory_that_is_not_there_is_named() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("man1");
        let e = write_all(cli(), &missing).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }
}

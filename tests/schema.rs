//! The profile's JSON Schema and the manual pages, through the real binary: the published schema
//! is what `netctl profile schema` prints (review a change, then `UPDATE_GOLDEN=1 cargo test
//! --test schema`), every example profile passes it, and what `profile check` refuses as a typo or
//! a wrong type the schema refuses too; `netctl man DIR` writes a page per command that matches
//! the command's help.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn netctl(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "netctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(netctl(args).stdout).unwrap()
}

fn published() -> PathBuf {
    root().join(netctl::commands::schema::PUBLISHED_PATH)
}

#[test]
fn published_schema_is_what_the_command_prints() {
    let printed = stdout(&["profile", "schema"]);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(published(), &printed).unwrap();
        return;
    }
    let file = std::fs::read_to_string(published()).unwrap_or_default();
    assert!(
        file == printed,
        "{} is not what `netctl profile schema` prints (review, then UPDATE_GOLDEN=1 cargo test --test schema)",
        published().display()
    );
}

/// The published schema, compiled (boon checks it against draft 7's meta-schema first).
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Validator {
        let text = std::fs::read_to_string(published()).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let url = "file:///netctl/profile.schema.json";
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(url, schema).unwrap();
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(url, &mut schemas)
            .unwrap_or_else(|e| panic!("{e:#}"));
        Validator { schemas, index }
    }

    /// The validation error, as text, or None when `doc` passes.
    fn check(&self, doc: &Value) -> Option<String> {
        self.schemas
            .validate(doc, self.index)
            .err()
            .map(|e| format!("{e:#}"))
    }
}

/// A YAML profile as an editor's language server sees it: JSON values.
fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn profiles() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_profile_passes_the_schema() {
    let v = Validator::new();
    let all = profiles();
    assert!(all.len() >= 6, "{all:?}");
    for p in all {
        if let Some(e) = v.check(&yaml(&p)) {
            panic!("{}: {e}", p.display());
        }
    }
}

/// `profile check` on `doc` written to a file: its exit code and stderr.
fn profile_check(doc: &Value) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, serde_yaml::to_string(doc).unwrap()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .args(["profile", "check", "-p"])
        .arg(&path)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn a_typo_and_a_wrong_type_are_caught_by_the_schema_as_by_the_parser() {
    let v = Validator::new();
    let good = yaml(&root().join("profiles/calico.yaml"));
    assert_eq!(v.check(&good), None);
    assert_eq!(profile_check(&good).0, Some(0));

    // A key off by case, as `clusterCidr` for `clusterCIDR`.
    let mut typo = good.clone();
    let k = typo["kubernetes"].as_object_mut().unwrap();
    let cidr = k.remove("clusterCIDR").unwrap();
    k.insert("clusterCidr".into(), cidr);
    let e = v.check(&typo).expect("the schema refuses a typo'd key");
    assert!(e.contains("clusterCidr"), "{e}");
    let (code, stderr) = profile_check(&typo);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("kubernetes.clusterCidr"), "{stderr}");

    // A number where a word is wanted, and a word where a number is.
    for (path, bad) in [
        (["ssh", "concurrency"], Value::from("many")),
        (["networking", "provider"], Value::from(7)),
    ] {
        let mut wrong = good.clone();
        wrong[path[0]][path[1]] = bad.clone();
        let e = v
            .check(&wrong)
            .unwrap_or_else(|| panic!("the schema takes {}.{} = {bad}", path[0], path[1]));
        assert!(e.contains(&format!("/{}/{}", path[0], path[1])), "{e}");
        let (code, stderr) = profile_check(&wrong);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&path.join(".")), "{stderr}");
    }
}

/// roff as text: the escapes clap_mangen writes undone.
fn unroff(s: &str) -> String {
    s.replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\*(Aq", "'")
        .replace("\\-", "-")
        .replace("\\\\", "\\")
}

/// The line after `.SH <section>` in a page.
fn section_line<'a>(page: &'a str, section: &str) -> &'a str {
    let mut lines = page.lines();
    lines
        .by_ref()
        .find(|l| *l == format!(".SH {section}"))
        .unwrap_or_else(|| panic!("no {section} in\n{page}"));
    lines.next().unwrap()
}

/// The items of a help section ("Commands:", "Arguments:", "Options:"), one line each. An item
/// is indented by 2 to 6 spaces; a description clap put on the lines below it (when one is long),
/// by 10.
fn help_items(help: &str, section: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != section)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| (2..=6).contains(&(l.len() - l.trim_start().len())))
        .map(|l| l.trim_start().to_string())
        .collect()
}

/// Every flag (`-p`, `--profile`) and positional (`DIR`) that a help or synopsis names.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || "[]<>|,.".contains(c))
        .filter(|w| {
            (w.starts_with('-') && w.len() > 1 && w != &"--")
                || (!w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        })
        .map(str::to_string)
        .collect()
}

/// Every command path from the help: [], ["init"], ["profile", "check"], ...
fn command_paths() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        for item in help_items(&stdout(&args), "Commands:") {
            let name = item.split_whitespace().next().unwrap().to_string();
            if name != "help" {
                let mut sub = path.clone();
                sub.push(name);
                todo.push(sub);
            }
        }
        out.push(path);
    }
    out
}

#[test]
fn man_writes_a_page_per_command_that_matches_its_help() {
    let dir = tempfile::tempdir().unwrap();
    netctl(&["man", dir.path().to_str().unwrap()]);
    let written: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let paths = command_paths();
    let want: BTreeSet<String> = paths
        .iter()
        .map(|p| {
            let mut name = vec!["netctl".to_string()];
            name.extend(p.iter().cloned());
            format!("{}.1", name.join("-"))
        })
        .collect();
    assert_eq!(written, want);
    assert!(want.contains("netctl-profile-schema.1") && want.contains("netctl-man.1"));

    for p in &paths {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("-h");
        let help = stdout(&args);
        let page_name = format!(
            "netctl{}",
            p.iter().map(|s| format!("-{s}")).collect::<String>()
        );
        let page = std::fs::read_to_string(dir.path().join(format!("{page_name}.1"))).unwrap();

        // NAME: the page's name and the command's one-line about, as the help opens.
        let about = help.lines().next().unwrap();
        assert_eq!(
            unroff(section_line(&page, "NAME")),
            format!("{page_name} - {about}")
        );

        // SYNOPSIS: the command as the help's usage writes it, with the same flags and arguments.
        let usage = help
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .unwrap();
        let synopsis = unroff(section_line(&page, "SYNOPSIS"));
        let command = format!(
            "netctl{}",
            p.iter().map(|s| format!(" {s}")).collect::<String>()
        );
        assert!(synopsis.starts_with(&format!("{command} ")), "{synopsis}");
        assert!(usage.starts_with(&format!("{command} ")), "{usage}");
        let mut named = BTreeSet::new();
        for section in ["Arguments:", "Options:"] {
            for item in help_items(&help, section) {
                // "-p, --profile <PROFILE>  The cluster ..." : the flags, or the argument.
                let head = item.split("  ").next().unwrap();
                named.extend(words(head.split('<').next().unwrap()));
                if section == "Arguments:" {
                    named.extend(words(head));
                }
            }
        }
        let mut in_synopsis = words(&synopsis);
        // A command with subcommands ends its synopsis with <subcommands> (help: <COMMAND>).
        in_synopsis.remove("subcommands");
        assert_eq!(
            in_synopsis, named,
            "{page_name}: {synopsis}\nvs help:\n{help}"
        );
    }
}

#[test]
fn man_without_a_directory_prints_the_top_page() {
    let page = stdout(&["man"]);
    assert_eq!(
        unroff(section_line(&page, "NAME")),
        format!("netctl - {}", stdout(&["-h"]).lines().next().unwrap())
    );
    assert!(page.contains(".TH netctl 1 "), "{page}");
}

#[test]
fn man_into_a_directory_that_is_not_there_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("man1");
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .arg("man")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is not a directory", missing.display())),
        "{stderr}"
    );
    assert!(!missing.exists());
}

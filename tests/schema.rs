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

/// The published schema and a validator for the draft-7 keywords it uses. A keyword it does not
/// know fails the test (a new schemars output must not be checked less than it says), so this
/// small validator stays honest instead of pulling a general one (and ~70 crates) into the build.
struct Validator {
    schema: Value,
}

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "format",
    "definitions",
];

impl Validator {
    fn new() -> Validator {
        let text = std::fs::read_to_string(published()).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            schema["$schema"], "http://json-schema.org/draft-07/schema#",
            "the validator below knows draft 7"
        );
        Validator { schema }
    }

    /// The validation error, as text, or None when `doc` passes.
    fn check(&self, doc: &Value) -> Option<String> {
        self.at(&self.schema, doc, "").err()
    }

    fn resolve<'a>(&'a self, r: &str) -> &'a Value {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("unsupported $ref {r}"));
        &self.schema["definitions"][name]
    }

    fn at(&self, s: &Value, v: &Value, path: &str) -> Result<(), String> {
        let Some(obj) = s.as_object() else {
            return match s.as_bool() {
                Some(true) => Ok(()),
                Some(false) => Err(format!("{path}: not allowed")),
                None => panic!("a schema is an object or a boolean: {s}"),
            };
        };
        for (k, want) in obj {
            match k.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => self.at(self.resolve(want.as_str().unwrap()), v, path)?,
                "type" => {
                    let types: Vec<&str> = match want {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                        _ => panic!("type {want}"),
                    };
                    if !types.iter().any(|t| is_type(v, t)) {
                        return Err(format!("{path}: {v} is not of type {types:?}"));
                    }
                }
                "enum" => {
                    if !want.as_array().unwrap().contains(v) {
                        return Err(format!("{path}: {v} is not one of {want}"));
                    }
                }
                "const" => {
                    if want != v {
                        return Err(format!("{path}: {v} is not {want}"));
                    }
                }
                "minimum" => {
                    if v.as_f64().is_some_and(|n| n < want.as_f64().unwrap()) {
                        return Err(format!("{path}: {v} is below {want}"));
                    }
                }
                "maximum" => {
                    if v.as_f64().is_some_and(|n| n > want.as_f64().unwrap()) {
                        return Err(format!("{path}: {v} is above {want}"));
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for r in want.as_array().unwrap() {
                            let r = r.as_str().unwrap();
                            if !o.contains_key(r) {
                                return Err(format!("{path}: required property {r:?} is missing"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (name, sub) in want.as_object().unwrap() {
                            if let Some(x) = o.get(name) {
                                self.at(sub, x, &format!("{path}/{name}"))?;
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(o) = v.as_object() {
                        let known = obj.get("properties").and_then(Value::as_object);
                        for (name, x) in o {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            self.at(want, x, &format!("{path}/{name}")).map_err(|_| {
                                format!("{path}: additional property {name:?} is not allowed")
                            })?;
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (i, x) in a.iter().enumerate() {
                            self.at(want, x, &format!("{path}/{i}"))?;
                        }
                    }
                }
                "allOf" => {
                    for sub in want.as_array().unwrap() {
                        self.at(sub, v, path)?;
                    }
                }
                "anyOf" => {
                    let subs = want.as_array().unwrap();
                    if !subs.iter().any(|sub| self.at(sub, v, path).is_ok()) {
                        return Err(format!("{path}: {v} matches none of anyOf"));
                    }
                }
                "oneOf" => {
                    let n = want
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|sub| self.at(sub, v, path).is_ok())
                        .count();
                    if n != 1 {
                        return Err(format!("{path}: {v} matches {n} of oneOf, not exactly one"));
                    }
                }
                other => panic!("the schema uses {other:?}, which this validator does not check"),
            }
        }
        Ok(())
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        other => panic!("unknown type {other}"),
    }
}

#[test]
fn the_validator_refuses_what_draft_7_refuses() {
    let v = Validator {
        schema: serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "required": ["a"],
            "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"$ref": "#/definitions/B"}},
            "additionalProperties": false,
            "definitions": {"B": {"oneOf": [{"type": "string", "enum": ["x", "y"]}, {"const": 7}]}}
        }),
    };
    assert_eq!(v.check(&serde_json::json!({"a": 2, "b": "x"})), None);
    assert_eq!(v.check(&serde_json::json!({"a": 2, "b": 7})), None);
    for bad in [
        serde_json::json!({"b": "x"}),
        serde_json::json!({"a": 0}),
        serde_json::json!({"a": "2"}),
        serde_json::json!({"a": 2, "b": "z"}),
        serde_json::json!({"a": 2, "c": 1}),
    ] {
        assert!(v.check(&bad).is_some(), "{bad} passed");
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

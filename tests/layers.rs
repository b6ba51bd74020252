//! The module graph stays layered (issue 13): among the modules below, no import cycle, and
//! `profile` (the result of loading the profile) imports nothing above it, only leaves. An import
//! is any `crate::X` path in a file of a module, its tests included; comments and strings do not
//! count. Read from the source, so a new edge fails here before it ties the modules together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules whose graph is checked (a module that does not exist is simply absent).
const CHECKED: [&str; 9] = [
    "profile",
    "network",
    "provider",
    "certs",
    "render",
    "template",
    "transport",
    "pins",
    "shell",
];

/// Modules that import none of `CHECKED`: the only ones `profile` may import.
const LEAVES: [&str; 3] = ["template", "pins", "shell"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under src/ belongs to: src/X.rs or src/X/...
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// The source with comments, string literals and char literals blanked out, so a doc comment or
/// a message naming `crate::x` is not an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i += j;
            out.push(' ');
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            i += end;
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < b.len() - i {
                match b[i + j] {
                    b'\\' => j += 2,
                    b'"' => {
                        j += 1;
                        break;
                    }
                    _ => j += 1,
                }
            }
            i += j;
            out.push_str("\"\"");
        } else if let Some(len) = char_literal(rest) {
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`...: the number of hashes.
fn raw_string_start(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s);
    let s = s.strip_prefix('r')?;
    let hashes = s.bytes().take_while(|c| *c == b'#').count();
    s[hashes..].starts_with('"').then_some(hashes)
}

/// `'x'`, `'\n'`, `'\''`, `'\u{..}'` (not a lifetime): its length.
fn char_literal(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('\'')?;
    if let Some(esc) = rest.strip_prefix('\\') {
        let end = esc[1..].find('\'')? + 1;
        return Some(1 + 1 + end + 1);
    }
    let c = rest.chars().next()?;
    rest[c.len_utf8()..]
        .starts_with('\'')
        .then_some(1 + c.len_utf8() + 1)
}

/// The top-level modules `code` names after `crate::`, including each one inside a
/// `crate::{a, b::c}` group.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        // `foo_crate::x` is another path.
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        item_start = true;
                        continue;
                    }
                    c if c.is_whitespace() => continue,
                    _ => {}
                }
                if item_start && depth == 1 && c != '{' && c != '}' {
                    found.insert(ident(&group[j..]));
                }
                item_start = false;
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

/// module -> the checked modules it imports (itself left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(m) = module_of(&f) else { continue };
        if !CHECKED.contains(&m.as_str()) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let edges = g.entry(m.clone()).or_default();
        for i in imports(&code) {
            if i != m && CHECKED.contains(&i.as_str()) {
                edges.insert(i);
            }
        }
    }
    g
}

/// Every cycle's path, as `a -> b -> a`, found by a depth-first search from each module.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        found: &mut BTreeSet<String>,
    ) {
        let here = path.last().unwrap().clone();
        for next in g.get(&here).into_iter().flatten() {
            if let Some(at) = path.iter().position(|p| p == next) {
                // One name per cycle: rotated to start at its smallest module.
                let mut cyc = path[at..].to_vec();
                let min = (0..cyc.len()).min_by_key(|i| &cyc[*i]).unwrap();
                cyc.rotate_left(min);
                cyc.push(cyc[0].clone());
                found.insert(cyc.join(" -> "));
            } else {
                path.push(next.clone());
                walk(g, path, found);
                path.pop();
            }
        }
    }
    let mut found = BTreeSet::new();
    for m in g.keys() {
        walk(g, &mut vec![m.clone()], &mut found);
    }
    found.into_iter().collect()
}

#[test]
fn the_checked_modules_import_each_other_without_a_cycle() {
    let g = graph();
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles among {CHECKED:?}:\n  {}\ngraph: {g:#?}",
        found.join("\n  ")
    );
}

#[test]
fn profile_imports_only_leaves_and_leaves_import_nothing_checked() {
    let g = graph();
    let profile = g.get("profile").expect("src/profile exists");
    let above: Vec<&String> = profile
        .iter()
        .filter(|m| !LEAVES.contains(&m.as_str()))
        .collect();
    assert!(
        above.is_empty(),
        "profile imports {above:?}: it may import only leaves {LEAVES:?}"
    );
    for leaf in LEAVES {
        let edges = g.get(leaf).cloned().unwrap_or_default();
        assert!(edges.is_empty(), "the leaf {leaf} imports {edges:?}");
    }
}

#[test]
fn imports_are_read_from_code_not_comments_or_strings() {
    let code = code_only(
        "use crate::{profile::{Cluster, Node}, provider};\n\
         // crate::certs in a comment\n\
         /* crate::render /* nested */ crate::shell */\n\
         let s = \"crate::transport\"; let r = r#\"crate::pins\"#; let c = '\"';\n\
         let t = crate::template::template(\"x\", &c); let l: &'static str = other_crate::x;\n",
    );
    assert_eq!(
        imports(&code),
        ["profile", "provider", "template"].map(String::from).into()
    );
}

#[test]
fn a_cycle_is_found_and_named_once() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&g), ["a -> b -> c -> a"]);
}

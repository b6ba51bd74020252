//! Every problem of a profile in one run, each with the line and column of the field it names.
//! serde_yaml stops at its first error (an unknown key, a value of the wrong type), which used to
//! hide every other problem of the file, and validation names fields by path only. Here the
//! document is read once more as a positioned tree (`tree`); each deserialisation error is
//! recorded and its entry left out of the document written for the next try, until the profile
//! deserialises (then validation's problems join in) or a required field is gone.

use std::path::Path;

use super::tree::{self, Item, Node, Pick, Seg};
use super::{Problem, Profile, ProfileError};

/// Enough to fix before running again; bounds the tries (each one parses the document).
const MAX_PROBLEMS: usize = 100;

/// What deserialising found: its problems, and the profile when it could be built without the
/// entries they name.
pub struct Deserialized {
    pub problems: Vec<Problem>,
    pub profile: Option<Profile>,
    /// The field paths left out or stood in for (as the original document numbers them):
    /// validation's problems with them are about netctl's stand-ins, not the file.
    pub removed: Vec<String>,
    /// A stand-in was a guess (not a near miss): validating the profile would judge the guess.
    pub guessed: bool,
}

/// Deserialise `tree` into a `Profile`, collecting every error serde_yaml finds, one per try.
pub fn deserialize(tree: &mut Item) -> Deserialized {
    let mut out = Deserialized {
        problems: Vec::new(),
        profile: None,
        removed: Vec::new(),
        guessed: false,
    };
    loop {
        if out.problems.len() >= MAX_PROBLEMS {
            // Sorted last (no position): the file has more than this run looked for.
            out.problems.push(Problem::new(
                "...",
                format!("stopped after {MAX_PROBLEMS} problems: fix these and run again"),
            ));
            break;
        }
        let text = tree.write();
        let e = match serde_path_to_error::deserialize::<_, Profile>(
            serde_yaml::Deserializer::from_str(&text),
        ) {
            Ok(profile) => {
                out.profile = Some(profile);
                break;
            }
            Err(e) => e,
        };
        let path = tree::segments(&e.path().to_string());
        let message = bare_message(&e.into_inner().to_string());
        let names = backticked(&message);
        let rest = names.get(1..).unwrap_or_default();
        let kind = message.split('`').next().unwrap_or("");
        match (kind, names.first()) {
            ("missing field ", Some(field)) => {
                let mut field_path = path.clone();
                field_path.push(Seg::Key(field.clone()));
                let found = tree.find(&field_path, Pick::First);
                let full = tree::path_of(&found.path);
                // Left out here because its value was reported: nothing more to say.
                if !out.removed.contains(&full) {
                    out.problems.push(Problem {
                        field: full,
                        message: "required, and missing".into(),
                        at: Some(found.pos),
                    });
                }
                break;
            }
            ("duplicate field ", Some(field)) => {
                let mut field_path = path.clone();
                if path.last() != Some(&Seg::Key(field.clone())) {
                    field_path.push(Seg::Key(field.clone()));
                }
                if !remove(
                    tree,
                    &field_path,
                    Pick::Last,
                    "given twice".into(),
                    &mut out,
                ) {
                    break;
                }
            }
            ("unknown field ", Some(key)) => {
                // A near miss is read as the key it resembles, as a compiler recovers from a
                // typo: the next tries then check its value, and a required field is not
                // reported missing for it.
                if let Some(s) = suggest(key, rest) {
                    if let Some((original, pos)) = tree.rename(&path, s) {
                        out.problems.push(Problem {
                            field: tree::path_of(&original),
                            message: format!("unknown key; did you mean `{s}`?"),
                            at: Some(pos),
                        });
                        continue;
                    }
                }
                let message = if rest.is_empty() {
                    "unknown key: this mapping takes none".to_string()
                } else {
                    format!("unknown key (valid here: {})", rest.join(", "))
                };
                if !remove(tree, &path, Pick::First, message, &mut out) {
                    break;
                }
            }
            ("unknown variant ", Some(value)) => {
                // serde's word for an enum's value is not the profile's.
                let message = message.replacen("unknown variant", "unknown value", 1);
                let suggested = suggest(value, rest);
                let message = match suggested {
                    Some(s) => format!("{message}; did you mean `{s}`?"),
                    None => message,
                };
                // An item of a list (a role) can be left out; a field's value is stood in for
                // (by the near miss, else the first valid value) so the rest of the document is
                // read. What a value stood in for is not validated.
                if suggested.is_none() && matches!(path.last(), Some(Seg::Index(_))) {
                    if !remove(tree, &path, Pick::First, message, &mut out) {
                        break;
                    }
                    continue;
                }
                let stand_in = suggested.unwrap_or_else(|| {
                    out.guessed = true;
                    rest.first().map_or("", String::as_str)
                });
                let found = tree.find(&path, Pick::First);
                let Some(item) = found.item else { break };
                item.node = Node::Scalar {
                    value: stand_in.to_string(),
                    plain: true,
                };
                let field = tree::path_of(&found.path);
                out.removed.push(field.clone());
                out.problems.push(Problem {
                    field,
                    message,
                    at: Some(found.pos),
                });
            }
            _ => {
                if !remove(tree, &path, Pick::First, message.clone(), &mut out) {
                    // Not an entry that can be left out (the document's root): the last word.
                    out.problems.push(Problem {
                        field: tree::path_of(&path),
                        message,
                        at: None,
                    });
                    break;
                }
            }
        }
    }
    out
}

/// Record `message` against `path` and leave that entry out; false when there is none to leave.
fn remove(
    tree: &mut Item,
    path: &[Seg],
    pick: Pick,
    message: String,
    out: &mut Deserialized,
) -> bool {
    if path.is_empty() {
        return false;
    }
    let found = tree.find(path, pick);
    let Some(item) = found.item else {
        return false;
    };
    item.removed = true;
    let field = tree::path_of(&found.path);
    out.removed.push(field.clone());
    out.problems.push(Problem {
        field,
        message,
        at: Some(found.pos),
    });
    true
}

/// serde_yaml's message without the field path it starts with and the position it ends with
/// (both are reported on their own).
fn bare_message(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // "nodes[0].address: invalid type ...": the path is a prefix without blanks before ": ".
    match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.contains('`') => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// The names serde quotes: "unknown field `x`, expected one of `a`, `b`" -> [x, a, b].
fn backticked(msg: &str) -> Vec<String> {
    msg.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The valid name closest to `name` when it is close enough to be what was meant: a letter or
/// two off, or the same but for case (clusterCidr, clusterCIDR).
pub fn suggest<'a>(name: &str, valid: &'a [String]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    valid
        .iter()
        .map(|v| (distance(&lower, &v.to_ascii_lowercase()), v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.as_str())
}

/// Edit distance: insertions, deletions, substitutions and swaps of neighbours (verison), each
/// one edit (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Give validation's problems the positions of the fields they name; drop those about fields
/// left out or stood in for as already reported (they judge netctl's stand-in, not the file).
pub fn place(tree: &mut Item, problems: Vec<Problem>, removed: &[String]) -> Vec<Problem> {
    problems
        .into_iter()
        .filter_map(|mut p| {
            let found = tree.find(&tree::segments(&p.field), Pick::First);
            let field = tree::path_of(&found.path);
            // The same field, one inside it, or the list it was left out of (a node's roles
            // without the one role reported is not a second problem).
            let within = |inner: &str, outer: &str| {
                inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            };
            if removed
                .iter()
                .any(|r| within(&field, r) || within(r, &field))
            {
                return None;
            }
            p.field = field;
            p.at = Some(found.pos);
            Some(p)
        })
        .collect()
}

/// Sorted by position, as an editor walks the file; problems without one last.
pub fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.at.is_none(), p.at));
}

/// The problems of a profile serde_yaml refused with `first`, or `first` alone (as a syntax
/// error) where the document cannot be read as a tree.
pub fn all(text: &str, path: &Path, first: serde_yaml::Error) -> ProfileError {
    let Some(mut tree) = tree::read(text) else {
        return super::single(first, path);
    };
    let d = deserialize(&mut tree);
    let mut problems = d.problems;
    if let Some(profile) = d.profile.filter(|_| !d.guessed) {
        if let Err(more) = super::resolve(profile) {
            problems.extend(place(&mut tree, more, &d.removed));
        }
    }
    if problems.is_empty() {
        return super::single(first, path);
    }
    sort(&mut problems);
    ProfileError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

/// Validation's problems of a profile that deserialised, placed and sorted.
pub fn semantic(text: &str, problems: Vec<Problem>) -> Vec<Problem> {
    let mut problems = match tree::read(text) {
        Some(mut tree) => place(&mut tree, problems, &[]),
        None => problems,
    };
    sort(&mut problems);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Pos;

    /// (line, column, field, message) of every problem `load_str` finds in `text`.
    fn problems(text: &str) -> Vec<(usize, usize, String, String)> {
        match crate::profile::load_str(text, Path::new("p.yaml")) {
            Err(ProfileError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| {
                    let Pos { line, column } = p.at.expect("every problem has a position");
                    (line, column, p.field, p.message)
                })
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const HEAD: &str = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: demo\n";

    /// Issue 16's acceptance: three typos and an overlapping CIDR, four errors in one run, each
    /// with its line and column, in the file's order.
    #[test]
    fn three_typos_and_an_overlap_are_four_problems_with_positions() {
        let text = format!(
            "{HEAD}kubernetes:\n  version: \"1.30\"\n  clusterCidr: 10.200.0.0/16\n  serviceCIDR: 10.200.0.0/24\n\
             networking:\n  provider: flannel\n  flannel: {{ bakend: host-gw }}\n\
             ssh:\n  idendityFile: ~/.ssh/id\nnodes:\n  - {{name: a, address: 10.0.0.1}}\n"
        );
        let got = problems(&text);
        let fields: Vec<(usize, usize, &str)> = got
            .iter()
            .map(|(l, c, f, _)| (*l, *c, f.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (6, 3, "kubernetes.clusterCidr"),
                (7, 3, "kubernetes.serviceCIDR"),
                (10, 14, "networking.flannel.bakend"),
                (12, 3, "ssh.idendityFile"),
            ],
            "{got:#?}"
        );
        assert!(got[1].3.contains("overlaps clusterCIDR"), "{got:#?}");
    }

    /// A typo used to stop serde_yaml before validation ran: now both are found.
    #[test]
    fn a_typo_no_longer_hides_a_semantic_error() {
        let text = format!(
            "{HEAD}kubernetes: {{version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24}}\n\
             networking: {{provider: routes}}\nssh: {{concurency: 4}}\nnodes:\n  - {{name: Bad, address: 10.0.0.1}}\n"
        );
        let got = problems(&text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!((got[0].0, got[0].2.as_str()), (6, "ssh.concurency"));
        assert_eq!(got[0].3, "unknown key; did you mean `concurrency`?");
        assert_eq!((got[1].0, got[1].2.as_str()), (8, "nodes[0].name"));
        assert!(got[1].3.contains("DNS-1123"), "{got:#?}");
    }

    #[test]
    fn did_you_mean_names_the_key_of_that_mapping() {
        let text = format!(
            "{HEAD}kubernetes: {{version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24}}\n\
             networking: {{provider: routes, routes: {{backend: vxlan, mut: 1400}}}}\nnodes:\n  - {{name: a, adress: 10.0.0.1}}\n  - {{name: b, address: 10.0.0.2, zone: x}}\n"
        );
        let got = problems(&text);
        let said: Vec<(&str, &str)> = got.iter().map(|p| (p.2.as_str(), p.3.as_str())).collect();
        assert_eq!(
            said[0],
            ("networking.routes.mut", "unknown key; did you mean `mtu`?")
        );
        assert_eq!(
            said[1],
            ("nodes[0].adress", "unknown key; did you mean `address`?")
        );
        // Nothing near: the keys that mapping takes.
        assert_eq!(said[2].0, "nodes[1].zone");
        assert!(
            said[2]
                .1
                .starts_with("unknown key (valid here: name, address, roles"),
            "{said:?}"
        );
    }

    /// A problem validation names by a deep path is placed on its line, block or flow style.
    #[test]
    fn a_deep_path_gets_its_line() {
        let text = format!(
            "{HEAD}kubernetes: {{version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24}}\n\
             networking: {{provider: routes}}\nnodes:\n  - {{name: a, address: 10.0.0.1}}\n  - name: b\n    address: 10.0.0.2\n\
             \x20 - name: c\n    # a comment\n    address: 10.0.0.300\n  - {{ name: d,\n      address: 10.0.0.1 }}\n"
        );
        let got = problems(&text);
        let placed: Vec<(usize, usize, &str)> = got
            .iter()
            .map(|(l, c, f, _)| (*l, *c, f.as_str()))
            .collect();
        assert_eq!(
            placed,
            [(12, 5, "nodes[2].address"), (14, 7, "nodes[3].address")],
            "{got:#?}"
        );
    }

    /// Each problem costs a parse of the file: a run stops at 100 and says so.
    #[test]
    fn a_run_stops_at_its_limit_and_says_so() {
        let nodes: String = (0..120)
            .map(|i| {
                format!(
                    "  - {{name: n{i}, adress: 10.0.{}.{}}}\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        let text = format!(
            "{HEAD}kubernetes: {{version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24}}\n\
             networking: {{provider: routes}}\nnodes:\n{nodes}"
        );
        let Err(ProfileError::Invalid { problems, .. }) =
            crate::profile::load_str(&text, Path::new("p.yaml"))
        else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(problems[MAX_PROBLEMS - 1].field, "nodes[99].adress");
        let last = &problems[MAX_PROBLEMS];
        assert_eq!(
            (last.at, last.message.as_str()),
            (None, "stopped after 100 problems: fix these and run again")
        );
    }

    /// A value of the wrong type is reported and the rest of the file still read.
    #[test]
    fn type_errors_are_reported_with_the_rest() {
        let text = format!(
            "{HEAD}kubernetes: {{version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24}}\n\
             networking: {{provider: flanel}}\nssh: {{port: \"22x\", concurrency: 0}}\nnodes:\n  - {{name: a, address: 10.0.0.1, roles: [worker, chef]}}\n"
        );
        let got = problems(&text);
        let said: Vec<(&str, &str)> = got.iter().map(|p| (p.2.as_str(), p.3.as_str())).collect();
        assert_eq!(said.len(), 4, "{said:#?}");
        assert!(said[0].1.ends_with("did you mean `flannel`?"), "{said:?}");
        assert_eq!(
            said[1],
            ("ssh.port", "invalid type: string \"22x\", expected u16")
        );
        assert_eq!(said[2].0, "ssh.concurrency");
        assert_eq!(said[3].0, "nodes[0].roles[1]");
    }

    #[test]
    fn suggestions_are_the_near_valid_names() {
        let valid: Vec<String> = ["clusterCIDR", "serviceCIDR", "version", "binDir"]
            .map(String::from)
            .to_vec();
        assert_eq!(suggest("clusterCidr", &valid), Some("clusterCIDR"));
        assert_eq!(suggest("servceCIDR", &valid), Some("serviceCIDR"));
        assert_eq!(suggest("verison", &valid), Some("version"));
        assert_eq!(suggest("bindir", &valid), Some("binDir"));
        assert_eq!(suggest("podCIDR", &valid), None);
        assert_eq!(suggest("x", &valid), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ab", "ba"), 1);
    }

    #[test]
    fn messages_lose_their_path_and_position() {
        assert_eq!(
            bare_message("ssh.port: invalid type: string \"x\", expected u16 at line 3 column 9"),
            "invalid type: string \"x\", expected u16"
        );
        assert_eq!(
            bare_message("unknown field `a: b`, expected `c`"),
            "unknown field `a: b`, expected `c`"
        );
    }
}

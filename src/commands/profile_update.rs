//! After a one-off `switch --networking X` succeeds, the profile file is made to name X: the
//! profile in git is the desired network, and one that still named the old network would make
//! the next `switch -p P` move the cluster back and `verify` fail every node. Only the provider
//! line and that provider's backend line change (`profile::rewrite` keeps every other byte);
//! a file that cannot be edited that way is left alone and the operator is told the lines.

use std::path::Path;

use crate::network::Network;
use crate::profile::rewrite::{self, Set};
use crate::profile::{self, Cluster};

/// One key of the profile that has to change: its path, what it says now, what it should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub set: Set,
    pub from: String,
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.set.key(), self.from, self.set.value)
    }
}

/// What became of the profile file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It already names the network.
    Unchanged,
    /// These keys were rewritten.
    Written(Vec<KeyChange>),
    /// Not touched: why, and the keys to change by hand.
    ByHand(String, Vec<KeyChange>),
}

/// The keys of `cluster`'s profile that differ from `to` (a network with its backend resolved,
/// `Network::of` the switch's target cluster).
pub fn changes(cluster: &Cluster, to: &Network) -> Vec<KeyChange> {
    let n = &cluster.profile.networking;
    let mut out = Vec::new();
    if n.provider != to.provider() {
        out.push(KeyChange {
            set: Set::new(&["networking", "provider"], to.provider().as_str()),
            from: n.provider.as_str().to_string(),
        });
    }
    let backend = match to {
        Network::Routes(Some(b)) if n.routes.backend != *b => {
            Some(("routes", n.routes.backend.as_str(), b.as_str()))
        }
        Network::Flannel(Some(b)) if n.flannel.backend != *b => {
            Some(("flannel", n.flannel.backend.as_str(), b.as_str()))
        }
        _ => None,
    };
    if let Some((section, from, want)) = backend {
        out.push(KeyChange {
            set: Set::new(&["networking", section, "backend"], want),
            from: from.to_string(),
        });
    }
    out
}

/// What a switch's result means for the profile file: "switched" rewrites it; "switched, with
/// errors" (every node runs the target but a later step failed, exit 1) leaves it, naming the
/// keys, since nothing is written on a failure; any other result (planned, unchanged, rolled
/// back) leaves it alone.
pub fn after_switch(result: &str, path: &Path, cluster: &Cluster, target: &Cluster) -> Outcome {
    if result == "switched" {
        return update(path, cluster, target);
    }
    let want = changes(cluster, &Network::of(target));
    if !result.starts_with("switched") || want.is_empty() {
        return Outcome::Unchanged;
    }
    Outcome::ByHand("the switch ended with errors".into(), want)
}

/// Make the profile file at `path` (which `cluster` was loaded from) name `target`'s network.
/// The file is re-read: one edited while the switch ran is not overwritten.
pub fn update(path: &Path, cluster: &Cluster, target: &Cluster) -> Outcome {
    let want = changes(cluster, &Network::of(target));
    if want.is_empty() {
        return Outcome::Unchanged;
    }
    let by_hand = |why: String| Outcome::ByHand(why, want.clone());
    let text = match crate::input::read_bounded(path, crate::input::DEFAULT_LIMIT) {
        Ok(t) => t,
        Err(e) => return by_hand(e.to_string()),
    };
    match profile::load_str(&text, path) {
        Ok(now) if now.hash == cluster.hash => {}
        _ => return by_hand("the file changed while the switch ran".into()),
    }
    let sets: Vec<Set> = want.iter().map(|c| c.set.clone()).collect();
    let new = match rewrite::set(&text, &sets) {
        Ok(t) => t,
        Err(e) => return by_hand(e.to_string()),
    };
    // The edited file must load as exactly the profile the switch moved to.
    match profile::load_str(&new, path) {
        Ok(c) if c.hash == target.hash => {}
        _ => return by_hand("the edited file would not load as the new network".into()),
    }
    match rewrite::write_atomic(path, &new) {
        Ok(()) => Outcome::Written(want),
        Err(e) => by_hand(format!("cannot write it: {e}")),
    }
}

/// The lines for stderr: one per changed key, or why not and what to change by hand.
pub fn text(path: &Path, outcome: &Outcome) -> Vec<String> {
    let p = path.display();
    match outcome {
        Outcome::Unchanged => vec![],
        Outcome::Written(keys) => keys.iter().map(|k| format!("profile {p}: {k}")).collect(),
        Outcome::ByHand(why, keys) => std::iter::once(format!(
            "profile {p}: not rewritten ({why}); change it by hand so it names the network the nodes now run:"
        ))
        .chain(keys.iter().map(|k| format!("  {k}")))
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "apiVersion: netctl/v1\nkind: ClusterProfile\nname: t\nkubernetes:\n  version: \"1.30\"  # pinned\n  clusterCIDR: 10.200.0.0/16\n  serviceCIDR: 10.32.0.0/24\nnetworking:\n  provider: routes  # host-gw for now\n  routes: { backend: host-gw }\nnodes:\n  - { name: w1, address: 10.0.0.11 }\n";

    fn file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let p = dir.path().join("cluster.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn target(c: &Cluster, to: &str) -> Cluster {
        crate::migrate::retarget(c, &to.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_switched_network_is_written_into_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, PROFILE);
        let c = profile::load(&p).unwrap();
        let t = target(&c, "routes:vxlan");
        let out = update(&p, &c, &t);
        assert_eq!(
            text(&p, &out),
            [format!(
                "profile {}: networking.routes.backend host-gw -> vxlan",
                p.display()
            )]
        );
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            PROFILE.replace("backend: host-gw", "backend: vxlan")
        );
        // The file now names the target: nothing more to do.
        let again = profile::load(&p).unwrap();
        assert_eq!(update(&p, &again, &t), Outcome::Unchanged);
    }

    #[test]
    fn a_provider_change_names_only_the_provider_and_its_backend() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, PROFILE);
        let c = profile::load(&p).unwrap();
        let t = target(&c, "flannel:wireguard");
        let out = update(&p, &c, &t);
        let lines = text(&p, &out);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("networking.provider routes -> flannel"));
        assert!(lines[1].ends_with("networking.flannel.backend vxlan -> wireguard"));
        let now = std::fs::read_to_string(&p).unwrap();
        assert!(
            now.contains("  provider: flannel  # host-gw for now\n"),
            "{now}"
        );
        assert!(
            now.contains("  routes: { backend: host-gw }\n  flannel:\n    backend: wireguard\n"),
            "{now}"
        );
        // calico has no backend: one line.
        let c = profile::load(&p).unwrap();
        let t = target(&c, "calico");
        assert_eq!(changes(&c, &Network::of(&t)).len(), 1);
    }

    #[test]
    fn a_file_that_cannot_be_edited_is_left_alone_and_the_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let flow = PROFILE.replace(
            "networking:\n  provider: routes  # host-gw for now\n  routes: { backend: host-gw }\n",
            "networking: { provider: routes, routes: { backend: host-gw } }\n",
        );
        let p = file(&dir, &flow);
        let c = profile::load(&p).unwrap();
        let t = target(&c, "canal");
        let out = update(&p, &c, &t);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), flow, "untouched");
        let lines = text(&p, &out);
        assert!(
            lines[0].contains("not rewritten (networking (line 8) is in flow style)"),
            "{lines:?}"
        );
        assert_eq!(lines[1], "  networking.provider routes -> canal");
    }

    /// Every example profile netctl ships (and a profile as serde_yaml writes one, the form of
    /// the lab tests' variants) can be moved to another network in place, line by line.
    #[test]
    fn every_shipped_profile_is_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut texts: Vec<(String, String)> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        assert!(texts.len() >= 6, "{texts:?}");
        let v: serde_yaml::Value = serde_yaml::from_str(PROFILE).unwrap();
        texts.push(("serialized".into(), serde_yaml::to_string(&v).unwrap()));
        let mut written = 0;
        for (name, text) in texts {
            let p = file(&dir, &text);
            let c = profile::load_str(&text, &p).unwrap();
            for to in ["routes:vxlan", "flannel:wireguard", "canal"] {
                // A target that profile cannot run (wireguard in an old flannel) is not asked.
                let Ok(t) = crate::migrate::retarget(&c, &to.parse().unwrap()) else {
                    continue;
                };
                let out = update(&p, &c, &t);
                if changes(&c, &Network::of(&t)).is_empty() {
                    assert_eq!(out, Outcome::Unchanged, "{name} -> {to}");
                    continue;
                }
                assert!(
                    matches!(out, Outcome::Written(_)),
                    "{name} -> {to}: {out:?}"
                );
                let now = std::fs::read_to_string(&p).unwrap();
                // At most the provider's and the backend's lines go; at most those two and
                // a new parent come.
                let diff = similar::TextDiff::from_lines(&text, &now);
                let count = |t| diff.iter_all_changes().filter(|c| c.tag() == t).count();
                let gone = count(similar::ChangeTag::Delete);
                let came = count(similar::ChangeTag::Insert);
                assert!(gone <= 2 && came <= 3, "{name} -> {to}:\n{now}");
                std::fs::write(&p, &text).unwrap();
                written += 1;
            }
        }
        assert!(written >= 18, "{written}");
    }

    /// Only a clean "switched" writes; with errors the keys are named; nothing else says a word.
    #[test]
    fn only_a_clean_switch_writes_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, PROFILE);
        let c = profile::load(&p).unwrap();
        let t = target(&c, "routes:vxlan");
        for result in [
            "planned",
            "unchanged",
            "rolled back",
            "rolled back, verify failed",
        ] {
            assert_eq!(
                after_switch(result, &p, &c, &t),
                Outcome::Unchanged,
                "{result}"
            );
        }
        let out = after_switch("switched, with errors", &p, &c, &t);
        assert_eq!(
            text(&p, &out)[0],
            format!("profile {}: not rewritten (the switch ended with errors); change it by hand so it names the network the nodes now run:", p.display())
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), PROFILE);
        assert!(matches!(
            after_switch("switched", &p, &c, &t),
            Outcome::Written(_)
        ));
    }

    #[test]
    fn a_file_edited_during_the_switch_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, PROFILE);
        let c = profile::load(&p).unwrap();
        let t = target(&c, "routes:vxlan");
        let edited = PROFILE.replace("name: t", "name: u");
        std::fs::write(&p, &edited).unwrap();
        let out = update(&p, &c, &t);
        assert!(matches!(out, Outcome::ByHand(ref why, _) if why.contains("changed while")));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), edited);
    }
}

//! The upstream versions netctl pins, in one place. Each pin has a row in docs/providers.md that
//! says which upstream file at which version the values netctl writes were checked against; the
//! test below fails when a pin changes without its row, so bumping a version means re-checking.

/// flanneld's image (ghcr.io/flannel-io/flannel) in the DaemonSet netctl renders.
pub const FLANNEL_VERSION: &str = "v0.28.0";
/// The flannel CNI plugin's image (ghcr.io/flannel-io/flannel-cni-plugin): the tag flannel's own
/// Documentation/kube-flannel.yml pins at FLANNEL_VERSION (v0.28.0 pins v1.8.0-flannel1).
pub const FLANNEL_CNI_PLUGIN_VERSION: &str = "v1.8.0-flannel1";
/// The projectcalico/calico tag whose manifests/calico.yaml and manifests/canal.yaml are applied.
pub const CALICO_VERSION: &str = "v3.31.0";
/// weaveworks/weave's last release. The project is archived (see weave.rs): no newer pin exists.
pub const WEAVE_VERSION: &str = "v2.8.1";

/// One pinned artifact, as its row in docs/providers.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub provider: &'static str,
    pub artifact: &'static str,
    pub version: &'static str,
}

pub const PINS: [Pin; 5] = [
    Pin {
        provider: "flannel",
        artifact: "image ghcr.io/flannel-io/flannel",
        version: FLANNEL_VERSION,
    },
    Pin {
        provider: "flannel",
        artifact: "image ghcr.io/flannel-io/flannel-cni-plugin",
        version: FLANNEL_CNI_PLUGIN_VERSION,
    },
    Pin {
        provider: "calico",
        artifact: "manifest projectcalico/calico manifests/calico.yaml",
        version: CALICO_VERSION,
    },
    Pin {
        provider: "canal",
        artifact: "manifest projectcalico/calico manifests/canal.yaml",
        version: CALICO_VERSION,
    },
    Pin {
        provider: "weave",
        artifact: "manifest weaveworks/weave weave-daemonset-k8s.yaml",
        version: WEAVE_VERSION,
    },
];

/// The rows of the "## Pins" table in docs/providers.md: (provider, artifact, version).
#[cfg(test)]
fn pin_rows(doc: &str) -> Vec<(String, String, String)> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Pins"))
        .expect("docs/providers.md has a \"## Pins\" section");
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() >= 3 && cells[0] != "provider" && !cells[0].starts_with("--"))
        .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/providers.md")).unwrap()
    }

    #[test]
    fn every_pin_has_its_row_in_docs_providers_md() {
        let rows = pin_rows(&doc());
        for p in PINS {
            let row = (
                p.provider.to_string(),
                p.artifact.to_string(),
                p.version.to_string(),
            );
            assert!(
                rows.contains(&row),
                "docs/providers.md has no Pins row `| {} | {} | {} |`: re-check the values netctl writes against that upstream version and record them (rows: {rows:?})",
                p.provider,
                p.artifact,
                p.version
            );
        }
        assert_eq!(
            rows.len(),
            PINS.len(),
            "a Pins row without its pin: {rows:?}"
        );
    }

    #[test]
    fn a_changed_pin_is_caught() {
        let changed = doc().replace("| v3.31.0 |", "| v3.31.7 |");
        let rows = pin_rows(&changed);
        assert!(!rows.contains(&(
            "calico".into(),
            "manifest projectcalico/calico manifests/calico.yaml".into(),
            CALICO_VERSION.into()
        )));
    }

    #[test]
    fn the_cni_plugin_is_the_one_flannels_manifest_pins() {
        // Documentation/kube-flannel.yml at flannel v0.28.0 (checked in
        // ../shared/upstream/kube-flannel-v0.28.0.yml): image flannel-cni-plugin:v1.8.0-flannel1.
        assert_eq!(
            (FLANNEL_VERSION, FLANNEL_CNI_PLUGIN_VERSION),
            ("v0.28.0", "v1.8.0-flannel1")
        );
    }
}

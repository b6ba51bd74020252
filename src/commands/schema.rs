//! `netctl profile schema`: the profile's JSON Schema, derived from the very types the parser
//! reads (profile::model), so an editor flags what `profile check` would refuse as the file is typed.
//! Published as schema/profile.schema.json (tests/schema.rs keeps it equal to this output).

use schemars::generate::SchemaSettings;

use crate::profile::Profile;

/// Where the published copy lives in the repository, for `$id` and the docs.
pub const PUBLISHED_PATH: &str = "schema/profile.schema.json";

/// The schema as pretty JSON with a final newline. Draft 7, not 2020-12: it is the newest draft
/// yaml-language-server (VS Code's YAML extension, and the editors built on it) validates.
pub fn json() -> String {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Profile>();
    schema.insert("title".into(), "netctl cluster profile".into());
    schema.insert(
        "description".into(),
        "A netctl cluster profile (apiVersion netctl/v1, kind ClusterProfile): docs/profile.md. \
         `netctl profile check` applies the rules a schema cannot state (CIDR overlaps, paths, \
         versions)."
            .into(),
    );
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn schema() -> Value {
        serde_json::from_str(&json()).unwrap()
    }

    /// Every object the parser reads denies unknown keys, so the schema must too: a typo is an
    /// error in the editor as it is in `profile check`.
    #[test]
    fn every_object_denies_unknown_keys() {
        let s = schema();
        let mut objects = vec![("root".to_string(), &s)];
        for (name, d) in s["definitions"].as_object().unwrap() {
            if d.get("properties").is_some() {
                objects.push((name.clone(), d));
            }
        }
        assert!(objects.len() > 10, "{}", objects.len());
        for (name, o) in objects {
            assert_eq!(o["additionalProperties"], Value::Bool(false), "{name}");
        }
    }

    /// serde's renames and defaults carry over: the keys are the file's keys, the defaults the
    /// parser's.
    #[test]
    fn renames_and_defaults_are_the_parsers() {
        let s = schema();
        let k = &s["definitions"]["Kubernetes"]["properties"];
        assert!(k.get("clusterCIDR").is_some() && k.get("cluster_cidr").is_none());
        assert_eq!(k["nodeCIDRMaskSize"]["default"], 24);
        let required: Vec<&str> = s["definitions"]["Kubernetes"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["version", "clusterCIDR", "serviceCIDR"]);
        assert_eq!(
            s["definitions"]["Ssh"]["properties"]["concurrency"]["default"],
            32
        );
        assert_eq!(s["properties"]["apiVersion"]["const"], "netctl/v1");
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    }
}

//! The template engine: templates under templates/ are built into the binary (`build.rs`), and
//! each is rendered from a typed, serialisable context. An undefined variable is a template error,
//! and a template error is a bug in netctl (golden tests render every template). A leaf: providers,
//! phases and render all call it, and it knows none of them.

use std::sync::OnceLock;

use serde::Serialize;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

fn engine() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        t.register_filter("yaml_str", yaml_str_filter);
        t.add_raw_templates(embedded::TEMPLATES.iter().copied())
            .unwrap_or_else(|e| panic!("netctl bug: a built-in template does not parse: {e:?}"));
        t
    })
}

/// `{{ value | yaml_str }}`: a string as a YAML scalar that reads back as the same string. Plain
/// when that is unambiguous (so ordinary values render as before), else a JSON string (a valid
/// YAML double-quoted scalar). Strings already in quotes in a template use `json_encode`.
fn yaml_str_filter(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let s = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("yaml_str takes a string, not {value}")))?;
    Ok(tera::Value::String(if is_plain_yaml(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }))
}

/// A conservative test: safe characters only, no indicator first or `:` last, and nothing
/// YAML 1.1 or 1.2 would read as null, a bool or a number (anything starting with a digit,
/// a sign or a dot is quoted unless it holds a character no number has, like `/`).
fn is_plain_yaml(s: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~", ".inf", "-.inf", "+.inf",
        ".nan", "<<", "=",
    ];
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._/:=+@~".contains(c);
    let first_ok = s.chars().next().is_some_and(|c| {
        c.is_ascii_alphanumeric() || "/._".contains(c) || (c == '-' && s.len() > 1)
    });
    let numeric_start = s
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    let maybe_number = numeric_start
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO._:+-".contains(c));
    first_ok
        && s.chars().all(safe)
        && !s.ends_with(':')
        && !maybe_number
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// Render the built-in template `id` (its path under templates/) with `ctx`.
pub fn template(id: &str, ctx: &impl Serialize) -> String {
    let ctx = tera::Context::from_serialize(ctx)
        .unwrap_or_else(|e| panic!("netctl bug: context for {id} does not serialise: {e}"));
    engine().render(id, &ctx).unwrap_or_else(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        panic!("netctl bug: template {id} failed to render: {msg}")
    })
}

/// Render a template that takes no variables.
pub fn template_plain(id: &str) -> String {
    template(id, &serde_json::json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values YAML would misread when spliced: a comment, a key, quotes, a line break, an alias
    /// or anchor, a bool, a number, an empty string.
    const HOSTILE: [&str; 10] = [
        "a: #b",
        "x'y\"z",
        "line\nbreak: 1",
        "*alias",
        "&anchor",
        "yes",
        "1.30",
        "",
        " lead",
        "- x",
    ];

    fn parses_back(
        id: &str,
        ctx: serde_json::Value,
        pick: impl Fn(&serde_yaml::Value) -> &serde_yaml::Value,
        want: &str,
    ) {
        let out = template(id, &ctx);
        let doc: serde_yaml::Value = serde_yaml::from_str(&out)
            .unwrap_or_else(|e| panic!("{id} with {want:?} is not YAML ({e}):\n{out}"));
        assert_eq!(pick(&doc).as_str(), Some(want), "{id}:\n{out}");
    }

    #[test]
    fn profile_strings_in_yaml_templates_are_encoded() {
        for v in HOSTILE {
            parses_back(
                "flannel/kubeconfig",
                serde_json::json!({"ca": v, "server": v, "cert": "c", "key": "k"}),
                |d| &d["clusters"][0]["cluster"]["server"],
                v,
            );
            parses_back(
                "calico/calico-node.yaml",
                serde_json::json!({"pool_cidr": v, "ipip_mode": "Always", "vxlan_mode": "Never", "block_size": 26}),
                |d| &d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
                v,
            );
            parses_back(
                "weave/weave-net.yaml",
                serde_json::json!({"ipalloc_range": v, "mtu": null}),
                |d| &d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
                v,
            );
            // An empty iface leaves canal_iface out.
            if !v.is_empty() {
                parses_back(
                    "canal/canal-config.yaml",
                    serde_json::json!({"iface": v, "masquerade": true, "net_conf": "    {}"}),
                    |d| &d["data"]["canal_iface"],
                    v,
                );
            }
            let out = template(
                "cni/10-bridge.conf",
                &serde_json::json!({"pod_cidr": v, "mtu": null}),
            );
            let doc: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
            assert_eq!(doc["ipam"]["ranges"][0][0]["subnet"], v);
        }
    }
}

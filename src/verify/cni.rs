//! The container runtime's half of the CNI protocol (SPEC.md), so verify can make test pods with
//! exactly the plugins and config the runtime would use: which config file wins, what each plugin
//! gets on stdin (cniVersion and name from the list, runtimeConfig for declared capabilities,
//! prevResult), the order (ADD forwards, DEL in reverse with the final ADD result), and the env.
//! Pure: the remote side only runs each invocation (dataplane.rs).

use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CniError {
    #[error("{file}: not JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// A network configuration list; a single `.conf` becomes a list of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    pub file: String,
    pub cni_version: String,
    pub name: String,
    pub plugins: Vec<Value>,
}

/// Whether the runtime would consider this file (libcni's extensions).
pub fn is_config_file(name: &str) -> bool {
    name.ends_with(".conf") || name.ends_with(".conflist") || name.ends_with(".json")
}

/// The file the runtime picks: the lexicographically first config file (byte order, as Go sorts).
pub fn active_file<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().filter(|n| is_config_file(n)).min()
}

pub fn parse(file: &str, text: &str) -> Result<ConfList, CniError> {
    let invalid = |message: &str| CniError::Invalid {
        file: file.to_string(),
        message: message.to_string(),
    };
    let v: Value = serde_json::from_str(text).map_err(|e| CniError::Json {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let obj = v.as_object().ok_or_else(|| invalid("not a JSON object"))?;
    let string = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let name = string("name").ok_or_else(|| invalid("no \"name\""))?;
    let cni_version = string("cniVersion").unwrap_or_else(|| "0.1.0".into());
    let plugins = if file.ends_with(".conflist") || obj.contains_key("plugins") {
        obj.get("plugins")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid("no \"plugins\" list"))?
            .clone()
    } else {
        vec![v.clone()]
    };
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type").and_then(Value::as_str).is_none() {
            return Err(invalid(&format!("plugin {i} has no \"type\"")));
        }
    }
    Ok(ConfList {
        file: file.to_string(),
        cni_version,
        name,
        plugins,
    })
}

impl ConfList {
    /// Every binary the list needs: plugin types and their IPAM types, in order, without repeats.
    pub fn binaries(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.plugins {
            for t in [
                p.get("type").and_then(Value::as_str),
                p.pointer("/ipam/type").and_then(Value::as_str),
            ]
            .into_iter()
            .flatten()
            {
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            }
        }
        out
    }

    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]["type"].as_str().unwrap_or("")
    }

    /// The config plugin `i` gets on stdin: cniVersion and name from the list, runtimeConfig for
    /// the capabilities it declares (with empty values: a test pod maps no ports), prevResult.
    pub fn plugin_config(&self, i: usize, prev_result: Option<&Value>) -> Value {
        let mut p: Map<String, Value> = self.plugins[i].as_object().cloned().unwrap_or_default();
        p.insert("cniVersion".into(), json!(self.cni_version));
        p.insert("name".into(), json!(self.name));
        if let Some(caps) = p.get("capabilities").and_then(Value::as_object) {
            let rc: Map<String, Value> = caps
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .filter_map(|(k, _)| capability_default(k).map(|v| (k.clone(), v)))
                .collect();
            if !rc.is_empty() {
                p.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        match prev_result {
            Some(r) => {
                p.insert("prevResult".into(), r.clone());
            }
            None => {
                p.remove("prevResult");
            }
        }
        Value::Object(p)
    }

    /// The pod MTU the list asks for (a plugin's `mtu`), if any.
    pub fn mtu(&self) -> Option<u32> {
        self.plugins
            .iter()
            .find_map(|p| p.get("mtu").and_then(Value::as_u64))
            .map(|m| m as u32)
    }

    /// The bridge a `bridge` plugin creates (default cni0).
    pub fn bridge(&self) -> Option<String> {
        self.plugins
            .iter()
            .find(|p| p["type"] == "bridge")
            .map(|p| p["bridge"].as_str().unwrap_or("cni0").to_string())
    }
}

/// The runtimeConfig value for a capability the runtime has nothing to pass for.
fn capability_default(cap: &str) -> Option<Value> {
    match cap {
        "portMappings" | "ips" | "mac" | "aliases" => Some(json!([])),
        "bandwidth" | "dns" => Some(json!({})),
        _ => None,
    }
}

/// CNI_* environment for one invocation.
pub fn env(
    command: &str,
    container_id: &str,
    netns: &str,
    ifname: &str,
    bin_dir: &str,
) -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", bin_dir),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// DEL order: the plugins in reverse, each given the final ADD result (or none when ADD never
/// finished: plugins must tolerate a DEL for what they never made).
pub fn del_order(list: &ConfList) -> Vec<usize> {
    (0..list.plugins.len()).rev().collect()
}

/// A plugin's answer: a result, or the CNI error object it printed.
pub fn parse_result(stdout: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("output is not JSON ({e}): {}", first_line(stdout)))?;
    if let Some(code) = v.get("code").and_then(Value::as_u64) {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
        let details = v.get("details").and_then(Value::as_str).unwrap_or("");
        return Err(format!("CNI error {code}: {msg} {details}")
            .trim()
            .to_string());
    }
    Ok(v)
}

/// The pod's first IPv4 address in a result (0.3.x-1.x: ips[].address, CIDR notation).
pub fn first_ipv4(result: &Value) -> Option<std::net::Ipv4Addr> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        ip["address"]
            .as_str()?
            .split('/')
            .next()?
            .parse::<std::net::Ipv4Addr>()
            .ok()
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLANNEL: &str = r#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"bridge","type":"bridge","bridge":"cni0","isGateway":true,"mtu":1450,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.200.0.0/24"}]]}}"#;

    #[test]
    fn the_first_config_file_wins_in_byte_order() {
        let names = [
            "99-loopback.conf",
            "10-bridge.conf",
            "README",
            "00-foreign.conflist",
            "10-Z.json",
        ];
        assert_eq!(active_file(names), Some("00-foreign.conflist"));
        assert_eq!(
            active_file(["10-flannel.conflist", "10-bridge.conf"]),
            Some("10-bridge.conf")
        );
        assert_eq!(active_file(["notes.txt"]), None);
    }

    #[test]
    fn a_single_conf_is_a_list_of_one() {
        let l = parse("10-bridge.conf", BRIDGE).unwrap();
        assert_eq!(l.name, "bridge");
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.binaries(), vec!["bridge", "host-local"]);
        assert_eq!(l.mtu(), Some(1450));
        assert_eq!(l.bridge().as_deref(), Some("cni0"));
    }

    #[test]
    fn chained_configs_get_version_name_runtime_config_and_prev_result() {
        let l = parse("10-flannel.conflist", FLANNEL).unwrap();
        assert_eq!(l.binaries(), vec!["flannel", "portmap"]);
        let first = l.plugin_config(0, None);
        assert_eq!(first["cniVersion"], "0.3.1");
        assert_eq!(first["name"], "cbr0");
        assert!(first.get("prevResult").is_none());
        assert!(first.get("runtimeConfig").is_none());
        let prev = json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.244.1.5/24"}]});
        let second = l.plugin_config(1, Some(&prev));
        assert_eq!(second["type"], "portmap");
        assert_eq!(second["prevResult"], prev);
        assert_eq!(second["runtimeConfig"], json!({"portMappings": []}));
        assert_eq!(second["name"], "cbr0");
        assert_eq!(del_order(&l), vec![1, 0]);
    }

    #[test]
    fn broken_configs_are_errors() {
        assert!(matches!(parse("a.conf", "{"), Err(CniError::Json { .. })));
        assert!(matches!(
            parse("a.conflist", r#"{"name":"x","plugins":[]}"#),
            Err(CniError::Invalid { .. })
        ));
        assert!(matches!(
            parse("a.conf", r#"{"name":"x"}"#),
            Err(CniError::Invalid { .. })
        ));
        assert!(matches!(
            parse("a.conf", r#"{"type":"bridge"}"#),
            Err(CniError::Invalid { .. })
        ));
    }

    #[test]
    fn results_and_errors() {
        let r = parse_result(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.200.0.2/24","gateway":"10.200.0.1"}]}"#,
        )
        .unwrap();
        assert_eq!(first_ipv4(&r), Some("10.200.0.2".parse().unwrap()));
        let e = parse_result(r#"{"code":7,"msg":"failed to allocate","details":"range full"}"#)
            .unwrap_err();
        assert_eq!(e, "CNI error 7: failed to allocate range full");
        assert!(parse_result("boom").is_err());
        let env = env("ADD", "c1", "/var/run/netns/c1", "eth0", "/usr/lib/cni");
        assert!(env.contains(&("CNI_PATH".into(), "/usr/lib/cni".into())));
    }
}

//! The container runtime's half of the CNI protocol (SPEC.md), so verify can make test pods with
//! exactly the plugins and config the runtime would use: which config file wins, what each plugin
//! gets on stdin (cniVersion and name from the list, runtimeConfig for declared capabilities,
//! prevResult), the order (ADD forwards, DEL in reverse with the final ADD result), and the env.
//! Pure: the remote side only runs each invocation (dataplane.rs).
//!
//! A config is written by whoever controls the node's provider (a DaemonSet copies it from a
//! ConfigMap), so `parse` treats it as hostile: the network name (host-local's state directory,
//! which verify removes), plugin types (binaries under the CNI bin dir) and the bridge name (a
//! device verify may delete) are checked here, once, before any of them reaches a path or a
//! script. A config that fails is an error naming the file and the value, never acted on.

use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CniError {
    #[error("{file}: not JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: {bad}")]
    Unsafe { file: String, bad: BadName },
}

/// A name read from a node that cannot become part of a path or a shell word. Values are shown
/// with `{:?}` so control characters in them reach the terminal escaped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadName {
    #[error(
        "network name {0:?} is not valid: the CNI spec requires ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
    )]
    Network(String),
    #[error("plugin type {0:?} is not a plain binary name (^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$)")]
    PluginType(String),
    #[error("{field} {value:?} is not a valid interface name: {why}")]
    Interface {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

/// The CNI spec's rule for network names, which plugin types (file names in the bin dir) follow
/// too: an alphanumeric first character rules out `.`, `..`, `-x` and the empty name; the rest
/// has no `/`, whitespace or shell metacharacter.
fn spec_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A CNI network name that is safe as one path component (host-local's
/// `/var/lib/cni/networks/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetworkName(String);

impl NetworkName {
    pub fn new(name: &str) -> Result<NetworkName, BadName> {
        if spec_name(name) {
            Ok(NetworkName(name.to_string()))
        } else {
            Err(BadName::Network(name.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NetworkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plugin (or IPAM plugin) type: the file name of a binary under the CNI bin dir.
pub fn check_plugin_type(t: &str) -> Result<(), BadName> {
    if spec_name(t) {
        Ok(())
    } else {
        Err(BadName::PluginType(t.to_string()))
    }
}

/// Linux's rule for device names (dev_valid_name: 1 to 15 bytes, not `.` or `..`, no `/`, `:`
/// or whitespace), plus no control characters and no leading `-`, which `ip` would read as an
/// option.
pub fn check_ifname(field: &'static str, name: &str) -> Result<(), BadName> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.len() > 15 {
        Some("longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not device names")
    } else if name.starts_with('-') {
        Some("starts with `-`")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Some("contains `/`, `:`, whitespace or a control character")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(BadName::Interface {
            field,
            value: name.to_string(),
            why,
        }),
    }
}

/// A network configuration list; a single `.conf` becomes a list of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    pub file: String,
    pub cni_version: String,
    pub name: NetworkName,
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
    let unsafe_ = |bad: BadName| CniError::Unsafe {
        file: file.to_string(),
        bad,
    };
    let name = NetworkName::new(&name).map_err(unsafe_)?;
    for (i, p) in plugins.iter().enumerate() {
        let Some(t) = p.get("type").and_then(Value::as_str) else {
            return Err(invalid(&format!("plugin {i} has no \"type\"")));
        };
        check_plugin_type(t).map_err(unsafe_)?;
        match p.pointer("/ipam/type") {
            None => {}
            Some(Value::String(t)) => check_plugin_type(t).map_err(unsafe_)?,
            Some(_) => {
                return Err(invalid(&format!(
                    "plugin {i}: ipam \"type\" is not a string"
                )))
            }
        }
        if t == "bridge" {
            match p.get("bridge") {
                None => {}
                Some(Value::String(b)) => check_ifname("bridge", b).map_err(unsafe_)?,
                Some(_) => return Err(invalid(&format!("plugin {i}: \"bridge\" is not a string"))),
            }
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
        p.insert("name".into(), json!(self.name.as_str()));
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

    /// The bridge a `bridge` plugin creates (default cni0); `parse` checked the name.
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
        assert_eq!(l.name.as_str(), "bridge");
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

    #[test]
    fn network_names_follow_the_cni_spec() {
        for ok in ["cbr0", "k8s-pod-network", "a", "9net", "my_net.v2-x"] {
            assert_eq!(NetworkName::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            ".",
            "..",
            "../../../../tmp/x",
            "a/b",
            "-net",
            "_net",
            ".hidden",
            "a b",
            "a\nb",
            "$(reboot)",
            "net'",
            "nét",
        ] {
            assert_eq!(
                NetworkName::new(bad),
                Err(BadName::Network(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn plugin_types_are_plain_binary_names() {
        for ok in [
            "bridge",
            "host-local",
            "calico-ipam",
            "weave-net",
            "cilium-cni",
        ] {
            assert_eq!(check_plugin_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../sbin/reboot",
            "/bin/sh",
            "-h",
            "a b",
            "x;y",
        ] {
            assert_eq!(
                check_plugin_type(bad),
                Err(BadName::PluginType(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn interface_names_follow_the_kernel_and_are_no_options() {
        for ok in ["cni0", "vpbr0", "br-123456789abc", "flannel.1", "weave"] {
            assert_eq!(check_ifname("bridge", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "a b",
            "a\tb",
            "a\nb",
            "-h",
            "a\u{1b}[2J",
            "sixteen-bytes-xx",
        ] {
            let e = check_ifname("bridge", bad).unwrap_err();
            assert!(
                matches!(&e, BadName::Interface { field: "bridge", value, .. } if value == bad),
                "{bad:?}: {e:?}"
            );
        }
        let e = check_ifname("bridge", "a\u{1b}[2J")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{1b}'), "shown escaped: {e}");
    }

    /// Issue 10, finding 3: a config whose name climbs out of host-local's state directory, or
    /// whose plugin or bridge names are not plain, is an error naming the file and the value.
    #[test]
    fn configs_with_unusable_names_are_errors_naming_file_and_value() {
        let cases = [
            (
                r#"{"name":"../../../../tmp/x","type":"bridge"}"#,
                "network name \"../../../../tmp/x\"",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"bridge"},{"type":"../../../bin/rm"}]}"#,
                "plugin type \"../../../bin/rm\"",
            ),
            (
                r#"{"name":"n","type":"bridge","ipam":{"type":"/tmp/ipam"}}"#,
                "plugin type \"/tmp/ipam\"",
            ),
            (
                r#"{"name":"n","type":"bridge","bridge":"-x"}"#,
                "bridge \"-x\" is not a valid interface name",
            ),
            (
                r#"{"name":"n","type":"bridge","bridge":"eth0 up"}"#,
                "bridge \"eth0 up\"",
            ),
        ];
        for (text, want) in cases {
            let e = parse("00-hostile.conf", text).unwrap_err();
            assert!(matches!(e, CniError::Unsafe { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with("00-hostile.conf: ") && msg.contains(want),
                "{msg}"
            );
        }
        assert!(matches!(
            parse("a.conf", r#"{"name":"n","type":"bridge","bridge":7}"#),
            Err(CniError::Invalid { .. })
        ));
        // Another plugin's "bridge" field is not a device netctl touches.
        assert!(parse("a.conf", r#"{"name":"n","type":"x","bridge":"-x"}"#).is_ok());
    }
}

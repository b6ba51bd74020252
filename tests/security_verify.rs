//! verify never acts on a path or a shell word a node chose (issue 10, finding 3). A CNI config
//! is written by whoever controls the provider's DaemonSet (from a ConfigMap), so its network
//! name, plugin types and bridge name are hostile input: verify reports a bad value as a failing
//! check and never builds a path or a command from it.

mod labkit;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use labkit::{can_run, text, Lab};
use serde_json::Value;

/// A directory of this test's own in the host's /tmp (a netns node shares the host's /tmp),
/// removed when the test ends, pass or fail.
struct Victim(PathBuf);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn check<'a>(v: &'a Value, id: &str, subject: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id && c["subject"] == subject))
        .unwrap_or_else(|| panic!("no {id} for {subject} in {v}"))
}

/// Issue 10, finding 3: a CNI config named `../../../../tmp/<victim>` made verify `rm -rf` the
/// victim as root (host-local's state directory of the network, registered for teardown).
#[test]
fn issue10_verify_does_not_remove_a_path_a_cni_config_names() {
    if !can_run("issue10_verify_does_not_remove_a_path_a_cni_config_names") {
        return;
    }
    let lab = Lab::up("vp-rmrf", "netns", 1, 163);
    let victim = Victim(PathBuf::from(format!("/tmp/{}", unique("vp-victim"))));
    let keep = victim.0.join("keep");
    lab.exec_ok(
        "node-1",
        &format!("mkdir {0} && echo mine > {0}/keep", victim.0.display()),
    );
    assert!(keep.exists(), "a netns node shares the host's /tmp");

    let name = format!("../../../..{}", victim.0.display());
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": "vpbr0",
        "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.200.0.0/24"}]]}
    });
    // host-local's state root exists on any node that has run a pod: the `..`s resolve from it.
    lab.exec_ok(
        "node-1",
        &format!(
            "mkdir -p /etc/cni/net.d /var/lib/cni/networks/cbr0 && \
             printf '%s\\n' '{conf}' > /etc/cni/net.d/00-vp-hostile.conf"
        ),
    );

    let o = lab.netctl(&["verify", "--output", "json"], &lab.profile);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert!(
        keep.exists(),
        "verify removed {}: {}",
        victim.0.display(),
        text(&o)
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let c = check(&v, "node.cni-config", "node-1");
    assert_eq!(c["status"], "fail", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("00-vp-hostile.conf"), "names the file: {c}");
    assert!(detail.contains(&name), "names the bad value: {c}");
    assert!(detail.contains("network name"), "says what is wrong: {c}");
    // Never acted on: no test pods from that config.
    assert_eq!(
        check(&v, "dataplane.pods", "node-1")["status"],
        "skip",
        "{v}"
    );
    let left = lab.exec_ok(
        "node-1",
        "ip netns list; ip -o link show vpbr0 2>/dev/null; true",
    );
    assert!(
        !left.contains("netctl-") && !left.contains("vpbr0"),
        "{left}"
    );
}

/// switch --resume/--rollback sweeps empty bridges named in the node's CNI configs. A config
/// that names the uplink (here a veth like the lab's own uplink), or a name `ip` would read as
/// an option, must not make the sweep delete anything but an empty bridge.
#[test]
fn issue10_the_switch_sweep_deletes_only_empty_bridges() {
    if !can_run("issue10_the_switch_sweep_deletes_only_empty_bridges") {
        return;
    }
    let lab = Lab::up("vp-sweep", "netns", 1, 164);
    let dir = "/etc/cni/net.d";
    lab.exec_ok(
        "node-1",
        &format!(
            "ip link add vpup0 type veth peer name vpup1 && ip link add vpbr1 type bridge && \
             mkdir -p {dir} && \
             printf '%s\\n' '{{\"name\":\"a\",\"type\":\"bridge\",\"bridge\":\"vpup0\"}}' > {dir}/10-a.conf && \
             printf '%s\\n' '{{\"name\":\"b\",\"type\":\"bridge\",\"bridge\":\"vpbr1\"}}' > {dir}/20-b.conf && \
             printf '%s\\n' '{{\"name\":\"c\",\"type\":\"bridge\",\"bridge\":\"-h\"}}' > {dir}/30-c.conf"
        ),
    );
    let out = lab.exec("node-1", &netctl::verify::dataplane::sweep_script(dir));
    assert!(out.status.success(), "the sweep failed: {}", text(&out));
    let links = lab.exec_ok("node-1", "ip -o link show | cut -d' ' -f2");
    assert!(
        links.contains("vpup0:"),
        "the sweep deleted a device that is no bridge: {links}"
    );
    assert!(!links.contains("vpbr1:"), "the empty bridge stays: {links}");
}

//! Snapshots of lab nodes taken before and after a command: equal means the command left the
//! node as it found it. `changeable` is what init or switch would change; `traces` is what a
//! probe could leave behind (listeners, processes, firewall rules, namespaces, run files).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use crate::labkit::Lab;

/// Files (with mtimes, directories included: a file made and removed again bumps its
/// directory's), links, addresses, routes, firewall rules and the sysctls init sets.
pub fn changeable(lab: &Lab) -> Vec<String> {
    each_node(
        lab,
        "for d in /etc/cni/net.d /var/lib/netctl /etc/systemd/system /etc/sysctl.d /etc/modules-load.d \
                   /usr/local/lib/netctl /var/lib/cni; do \
           [ -d $d ] && find $d -xdev -printf '%p %T@ %s %m\\n'; done | sort; \
         ip -o link show | cut -d' ' -f2,3,5 | sed -e 's/NO-CARRIER,//' -e 's/,LOWER_UP//'; \
         ip -4 -o addr show | cut -d' ' -f2,7; ip -4 route show table all | grep -v ' table local'; \
         sysctl -n net.ipv4.ip_forward; \
         iptables-save | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'",
    )
}

/// Listening sockets, firewall rules (iptables, and nftables where the node has `nft`: the lab's
/// systemd root has not; counters left out), /run/netctl's entries and the node's network
/// namespaces.
pub fn traces(lab: &Lab) -> Vec<String> {
    each_node(
        lab,
        "ss -Hlnuwt | awk '{ print $1, $5 }' | sort; \
         iptables-save | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'; \
         nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'; \
         echo /run/netctl:; ls -A /run/netctl 2>/dev/null; echo netns:; ip netns list",
    )
}

fn each_node(lab: &Lab, script: &str) -> Vec<String> {
    (1..=lab.nodes)
        .map(|i| format!("{}:\n{}", lab.node(i), lab.exec_ok(&lab.node(i), script)))
        .collect()
}

/// The host's processes (pid, command line) other than this test's own whose command line
/// contains `needle`: a run id is in the name of everything that run starts on a node.
pub fn processes_carrying(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline.trim_end().to_string()));
        }
    }
    found
}

/// The commands of the processes in netns node `i`'s network namespace, sshd left out (its
/// per-connection children end on their own as the client goes): what a probe started there
/// and left running shows, whatever it is called.
pub fn processes_in_node(lab: &Lab, i: usize) -> BTreeSet<String> {
    let ns = format!("/run/netns/{}-{}", lab.name, lab.node(i));
    let ino = std::fs::metadata(&ns)
        .unwrap_or_else(|e| panic!("{ns}: {e}"))
        .ino();
    let want = format!("net:[{ino}]");
    let mut found = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none()
        {
            continue;
        }
        let in_node =
            std::fs::read_link(e.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == want);
        if !in_node {
            continue;
        }
        // By its name, which a process keeps to its end: its command line goes while it frees
        // its memory, and an sshd child ending as its client left would read as "".
        let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        if comm.starts_with("sshd") {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        let cmdline = cmdline.trim_end();
        found.insert(if cmdline.is_empty() {
            format!("[{}]", comm.trim_end())
        } else {
            cmdline.to_string()
        });
    }
    found
}

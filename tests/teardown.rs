//! Issue 15, item 4: each provider's teardown removes what that provider leaves on a node, and
//! only that. On one netns lab node, for each provider in turn: the node is wiped, the look-alikes
//! (kube-proxy's and Docker's chains, a user's MASQUERADE rule and nftables table, other links,
//! another network's reservations, a BIRD route outside the pool) and every *other* provider's
//! leftovers are planted and snapshotted; then this provider's leftovers are planted as the real
//! provider names them (docs/providers.md); then `netctl reset` runs the teardown exactly as
//! `netctl render` puts it in plan.json, from a state.json that records the provider. The snapshot
//! after (iptables-save of every variant, nft list ruleset, ip -d link, ip route show table all,
//! find /var/lib/cni) must be the one before, byte for byte.
//!
//! The lab kernel has no wireguard, ipip or openvswitch devices: links of those names are made as
//! bridges or veths (the teardown deletes by name). No runtime answers on the lab (no crictl), so
//! every reservation of the leaving network goes (docs/switch.md).

mod labkit;

use std::collections::BTreeSet;

use labkit::{netctl, run_ok, text, Lab};

/// What the test plants: each piece once, under a name; a provider's leftovers are some pieces.
const PIECES: &[(&str, &str)] = &[
    (
        "flannel-iptables",
        r#"
for v in iptables ip6tables; do
  $v -w -t nat -N FLANNEL-POSTRTG
  $v -w -t nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
  $v -w -t filter -N FLANNEL-FWD
  $v -w -t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
done
iptables -w -t nat -A FLANNEL-POSTRTG -s 10.200.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE
iptables -w -t filter -A FLANNEL-FWD -s 10.200.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
"#,
    ),
    (
        "flannel-nft",
        "nft add table ip flannel-ipv4; nft add chain ip flannel-ipv4 postrtg '{ type nat hook postrouting priority srcnat; }'\n\
         nft add rule ip flannel-ipv4 postrtg ip saddr 10.200.0.0/16 masquerade\n\
         nft add table ip6 flannel-ipv6",
    ),
    (
        "flannel.1",
        "ip link add flannel.1 type vxlan id 1 dev eth0 dstport 8472 nolearning",
    ),
    (
        "flannel-links",
        "ip link add flannel-v6.1 type vxlan id 1 dstport 8472 local ::1\n\
         ip link add flannel-wg type bridge; ip link add flannel-wg-v6 type bridge",
    ),
    ("cni0", "ip link add cni0 type bridge; ip link set cni0 up; ip addr add 10.200.0.1/24 dev cni0"),
    ("ipam-cbr0", "reserve cbr0"),
    ("ipam-bridge", "reserve bridge"),
    ("ipam-kubenet", "reserve kubenet"),
    ("ipam-canal", "reserve k8s-pod-network"),
    (
        "calico-iptables",
        r#"
iptables -w -t raw -N cali-PREROUTING
iptables -w -t raw -A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING
iptables -w -t nat -N cali-nat-outgoing
iptables -w -t nat -N cali-POSTROUTING
iptables -w -t nat -A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING
iptables -w -t nat -A cali-POSTROUTING -m comment --comment "cali:Z-c7XtVd2Bq7s_hA" -j cali-nat-outgoing
iptables -w -t nat -A cali-nat-outgoing -s 10.200.0.0/16 -m comment --comment "cali:flqWnvo8yq4ULQLa" -j MASQUERADE
iptables -w -t filter -N cali-FORWARD
iptables -w -t filter -A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD
iptables -w -t filter -A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m mark --mark 0x10000/0x10000 -j ACCEPT
iptables-legacy -w -t filter -N cali-INPUT
iptables-legacy -w -t filter -A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
ip6tables -w -t filter -N cali-FORWARD
ip6tables -w -t filter -A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD
"#,
    ),
    (
        "calico-nft",
        "nft add table ip calico; nft add chain ip calico filter-FORWARD '{ type filter hook forward priority filter; }'\n\
         nft add table ip6 calico",
    ),
    (
        "calico-links",
        "ip link add vxlan.calico type vxlan id 4096 dev eth0 dstport 4789\n\
         ip link add vxlan-v6.calico type vxlan id 4096 dstport 4789 local ::1\n\
         ip link add wireguard.cali type bridge; ip link add wg-v6.cali type bridge",
    ),
    (
        "calico-routes",
        "ip route add blackhole 10.200.0.0/26 proto bird\n\
         ip route add 10.200.0.64/26 via 10.240.205.3 proto bird\n\
         ip route add blackhole 10.200.0.128/26 proto 80\n\
         ip route add 10.200.0.192/26 via 10.240.205.4 dev eth0 onlink proto 80 table 1",
    ),
    (
        "weave",
        r#"
ip link add weave type bridge; ip link add datapath type bridge
ip link add vethwe-bridge type veth peer name vethwe-pcap
ip link add vethwe-datapath type bridge
ip link add vxlan-6784 type vxlan id 6784 dstport 6784
iptables -w -t nat -N WEAVE
iptables -w -t nat -A POSTROUTING -j WEAVE
iptables -w -t nat -A WEAVE -s 10.200.0.0/16 -d 224.0.0.0/4 -j RETURN
iptables -w -t filter -N WEAVE-NPC
iptables -w -t filter -N WEAVE-NPC-EGRESS
iptables -w -t filter -A INPUT -i weave -j WEAVE-NPC-EGRESS
iptables -w -t filter -A FORWARD -o weave -m comment --comment "NOTE: this must go before '-j KUBE-FORWARD'" -j WEAVE-NPC
iptables -w -t filter -A FORWARD -o weave -j DROP
iptables -w -t filter -A FORWARD -i weave ! -o weave -j ACCEPT
iptables -w -t filter -A INPUT -d 127.0.0.1/32 -p tcp --dport 6784 -m addrtype ! --src-type LOCAL -m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment "Block non-local access to Weave Net control port" -j DROP
iptables -w -t mangle -N WEAVE-CANARY
"#,
    ),
    (
        "kubenet",
        "ip link add cbr0 type bridge\n\
         iptables -w -t nat -A POSTROUTING -m comment --comment \"kubenet: SNAT for outbound traffic from cluster\" -m addrtype ! --dst-type LOCAL ! -d 10.200.0.0/16 -j MASQUERADE",
    ),
];

/// What is no provider's: planted first for every provider, and never removed.
const LOOK_ALIKES: &str = r#"
# A user's rule in every built-in chain of every table, each variant and family: the tables
# exist before any provider's leftovers (iptables-nft makes a table on first use, and an empty
# table of iptables' own is not a provider's to remove).
for v in iptables-nft ip6tables-nft iptables-legacy ip6tables-legacy; do
  for tc in raw:PREROUTING raw:OUTPUT mangle:PREROUTING mangle:INPUT mangle:FORWARD mangle:OUTPUT \
            mangle:POSTROUTING nat:PREROUTING nat:INPUT nat:OUTPUT nat:POSTROUTING \
            filter:INPUT filter:FORWARD filter:OUTPUT; do
    $v -w -t "${tc%%:*}" -A "${tc#*:}" -m comment --comment "user rule" -j RETURN
  done
done
iptables -w -t nat -N KUBE-SERVICES
iptables -w -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -w -t nat -N DOCKER
iptables -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables -w -t nat -A POSTROUTING -s 10.200.0.0/16 ! -d 10.200.0.0/16 -j MASQUERADE
iptables -w -t nat -A POSTROUTING -s 10.99.0.0/16 -m comment --comment "not flanneld masq" -j MASQUERADE
iptables -w -t nat -N CNI-0123456789abcdef01234567
iptables -w -t nat -A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"other\" id: \"abc\"" -j CNI-0123456789abcdef01234567
iptables -w -t filter -N FLANNEL-POSTRTG-MINE
iptables -w -t filter -A FORWARD -i weave0 -j ACCEPT
iptables -w -t filter -A FORWARD -m comment --comment "calico:not-felix" -j ACCEPT
nft add table inet user-filter; nft add chain inet user-filter input '{ type filter hook input priority 10; }'
ip link add keep0 type bridge; ip link add caliuser0 type veth peer name caliuser1
ip route add 10.77.0.0/26 via 10.240.205.5 proto bird
ip route add 10.200.5.0/24 via 10.240.205.6
ip route add blackhole 10.200.9.0/26
reserve other-net
"#;

/// The leftovers of each provider: the pieces it owns.
const PROVIDERS: &[(&str, &[&str])] = &[
    ("routes", &["cni0", "ipam-bridge"]),
    ("kubenet", &["kubenet", "ipam-kubenet"]),
    (
        "flannel",
        &[
            "flannel-iptables",
            "flannel-nft",
            "flannel.1",
            "flannel-links",
            "cni0",
            "ipam-cbr0",
        ],
    ),
    (
        "calico",
        &[
            "calico-iptables",
            "calico-nft",
            "calico-links",
            "calico-routes",
        ],
    ),
    (
        "canal",
        &[
            "flannel-iptables",
            "calico-iptables",
            "calico-nft",
            "ipam-canal",
            "flannel.1",
        ],
    ),
    ("weave", &["weave"]),
];

/// Shell functions the planting uses.
const PRELUDE: &str = r#"set -e
reserve() { # a reservation of a pod that is gone, with host-local's lock and cursor
  d=/var/lib/cni/networks/$1; mkdir -p "$d"
  printf '%s\neth0\n' 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > "$d/10.200.0.7"
  printf '10.200.0.7' > "$d/last_reserved_ip.0"; : > "$d/lock"
}
"#;

/// Everything the test plants goes, whoever planted it (a blank node for the next provider).
const WIPE: &str = r#"
for v in iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy; do
  for t in nat filter mangle raw; do $v -w -t $t -F 2>/dev/null || true; $v -w -t $t -X 2>/dev/null || true; done
done
nft flush ruleset
for l in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'); do
  case $l in lo|eth0) ;; *) ip link del "$l" 2>/dev/null || true ;; esac
done
ip -4 route flush table all root 10.200.0.0/16 2>/dev/null || true
ip -4 route flush table all root 10.77.0.0/16 2>/dev/null || true
rm -rf /var/lib/cni/networks /var/lib/netctl/state.json
"#;

const SNAPSHOT: &str = r#"
for v in iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy; do
  echo "== $v"; $v-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
done
echo "== nft"; nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
echo "== links"; ip -d link show | grep -v '^ *link/' | sed -E 's/^[0-9]+: //; s/(hello_timer|tcn_timer|topology_change_timer|gc_timer) +[0-9.]+//g'
# IPv6's kernel routes (link-local, multicast) follow the links (compared above) and appear late,
# once duplicate address detection is done: comparing them compares the kernel's timing.
echo "== routes"; ip -4 route show table all; ip -6 route show table all | grep -v ' proto kernel'
echo "== cni"; find /var/lib/cni -printf '%p %s\n' 2>/dev/null | sort
"#;

fn plant(pieces: &[&str]) -> String {
    let mut s = String::new();
    for name in pieces {
        s.push_str(PIECES.iter().find(|(n, _)| n == name).unwrap().1);
        s.push('\n');
    }
    s
}

/// The provider's profile (routes: the lab's own, which init installs) and the node's teardown
/// as `netctl render` writes it into plan.json.
fn rendered_teardown(lab: &Lab, provider: &str) -> (std::path::PathBuf, serde_json::Value) {
    let profile = if provider == "routes" {
        lab.profile.clone()
    } else {
        lab.profile_variant(provider, |v| {
            v["networking"]["provider"] = provider.into();
            match provider {
                "kubenet" => {
                    v["kubernetes"]["version"] = "1.23".into();
                    v["kubernetes"]["containerRuntime"] = "docker".into();
                }
                "flannel" => {
                    v["networking"]["flannel"] =
                        serde_yaml::from_str("{ deploy: daemonset }").unwrap()
                }
                _ => {}
            }
        })
    };
    let out = profile.with_file_name(format!("render-{provider}"));
    let _ = std::fs::remove_dir_all(&out);
    run_ok(
        netctl()
            .args(["render", "-p"])
            .arg(&profile)
            .arg("--out")
            .arg(&out),
    );
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    let teardown = plan["nodes"][0]["teardown"].clone();
    assert!(
        teardown.as_array().is_some_and(|a| !a.is_empty()),
        "{provider}: plan.json has no teardown: {plan}"
    );
    (profile, teardown)
}

fn lines(s: &str) -> BTreeSet<&str> {
    s.lines().collect()
}

#[test]
fn each_providers_teardown_removes_its_leftovers_and_nothing_else() {
    if !labkit::can_run("each_providers_teardown_removes_its_leftovers_and_nothing_else") {
        return;
    }
    let lab = Lab::up("td1", "netns", 1, 205);
    let node = lab.node(1);
    let mut failures = Vec::new();
    for (provider, own) in PROVIDERS {
        let (profile, teardown) = rendered_teardown(&lab, provider);
        let others: Vec<&str> = PROVIDERS
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .filter(|p| !own.contains(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        lab.exec_ok(
            &node,
            &format!("{PRELUDE}{WIPE}{LOOK_ALIKES}{}", plant(&others)),
        );
        let before = lab.exec_ok(&node, SNAPSHOT);
        if *provider == "routes" {
            // The lab runs routes for real: init installs routes.sh (its teardown calls it) and
            // its own rule, which the teardown must remove too.
            let o = lab.netctl(&["init", "--yes", "--no-verify"], &profile);
            assert!(o.status.success(), "{}", text(&o));
        } else {
            let state = serde_json::json!({
                "provider": provider, "backend": "", "profile_sha256": "planted",
                "run_id": "20261130T000000Z-td01", "files": {}, "teardown": teardown,
            });
            lab.exec_ok(
                &node,
                &format!(
                    "mkdir -p /var/lib/netctl && cat > /var/lib/netctl/state.json <<'EOF'\n{state}\nEOF"
                ),
            );
        }
        lab.exec_ok(&node, &format!("{PRELUDE}{}", plant(own)));
        let planted = lab.exec_ok(&node, SNAPSHOT);
        assert_ne!(before, planted, "{provider}: nothing was planted");
        let o = lab.netctl(&["reset", "--yes"], &profile);
        if !o.status.success() {
            failures.push(format!("{provider}: reset failed: {}", text(&o)));
            continue;
        }
        let after = lab.exec_ok(&node, SNAPSHOT);
        if after != before {
            let (b, a) = (lines(&before), lines(&after));
            failures.push(format!(
                "{provider}: after its teardown the node differs from before its leftovers were planted\n  left behind: {:#?}\n  removed that was not its own: {:#?}",
                a.difference(&b).collect::<Vec<_>>(),
                b.difference(&a).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

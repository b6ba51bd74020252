//! One thing broken on one lab node, and put back when the value goes out of scope (before the
//! lab goes down, so a failed assertion still leaves the host as it was). Each break is proved
//! by its test with the plain tool the break stops (a datagram, a don't-fragment ping, a route
//! lookup) before preflight is asked about it, so a preflight result is never read against a
//! break that did not happen.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::labkit::Lab;

enum Step {
    Node(String, String),
    Host(String),
}

/// What a break changed; its undo runs newest first on drop.
pub struct Broken<'a> {
    lab: &'a Lab,
    undo: Vec<Step>,
}

impl<'a> Broken<'a> {
    fn new(lab: &'a Lab) -> Broken<'a> {
        Broken {
            lab,
            undo: Vec::new(),
        }
    }

    /// Run `script` in `node` and remember `undo` for it. The undo is remembered first: a
    /// script that fails half way is still put back.
    fn node(mut self, node: &str, script: &str, undo: &str) -> Broken<'a> {
        self.undo.push(Step::Node(node.into(), undo.into()));
        self.lab.exec_ok(node, script);
        self
    }

    fn host(mut self, script: &str, undo: &str) -> Broken<'a> {
        self.undo.push(Step::Host(undo.into()));
        host_ok(script);
        self
    }
}

impl Drop for Broken<'_> {
    fn drop(&mut self) {
        for step in self.undo.drain(..).rev() {
            // Not a panic: a drop during a failed test's unwinding would abort the run.
            let (what, out) = match &step {
                Step::Node(n, s) => (format!("{n}: {s}"), self.lab.exec(n, s)),
                Step::Host(s) => (format!("host: {s}"), host(s)),
            };
            if !out.status.success() {
                eprintln!(
                    "undo failed: {what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

fn host(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh")
}

pub fn host_ok(script: &str) -> String {
    let o = host(script);
    assert!(
        o.status.success(),
        "host: {script}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The lab's address of node `i` (as `netctl lab` numbers them: the subnet's 10 + i).
pub fn address(octet: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 240, octet, 10 + i as u8)
}

/// `iptables -I INPUT -p udp --dport PORT -j DROP` in the node.
pub fn drop_udp<'a>(lab: &'a Lab, node: &str, port: u16) -> Broken<'a> {
    let rule = format!("INPUT -p udp --dport {port} -j DROP");
    Broken::new(lab).node(
        node,
        &format!("iptables -I {rule}"),
        &format!("iptables -D {rule}"),
    )
}

/// `iptables -I INPUT -s FROM -p udp --dport PORT -j DROP` in the node: one pair broken, one way.
pub fn drop_udp_from<'a>(lab: &'a Lab, node: &str, from: Ipv4Addr, port: u16) -> Broken<'a> {
    let rule = format!("INPUT -s {from} -p udp --dport {port} -j DROP");
    Broken::new(lab).node(
        node,
        &format!("iptables -I {rule}"),
        &format!("iptables -D {rule}"),
    )
}

/// Strict reverse-path filtering on all of the node's interfaces; the old value comes back.
pub fn strict_rp_filter<'a>(lab: &'a Lab, node: &str) -> Broken<'a> {
    let was = lab.exec_ok(node, "sysctl -n net.ipv4.conf.all.rp_filter");
    Broken::new(lab).node(
        node,
        "sysctl -q -w net.ipv4.conf.all.rp_filter=1",
        &format!("sysctl -q -w net.ipv4.conf.all.rp_filter={}", was.trim()),
    )
}

/// Both ends of netns node `i`'s link at `mtu` (the lab bridge forwards at each port's MTU, so
/// only frames to and from this node are limited).
pub fn lower_mtu(lab: &Lab, i: usize, mtu: u32) -> Broken<'_> {
    let veth = format!("nl-{}-{i}", lab.name);
    Broken::new(lab)
        .host(
            &format!("ip link set {veth} mtu {mtu}"),
            &format!("ip link set {veth} mtu 1500"),
        )
        .node(
            &lab.node(i),
            &format!("ip link set eth0 mtu {mtu}"),
            "ip link set eth0 mtu 1500",
        )
}

/// `install MODULE /bin/false` in the node's own /etc/modprobe.d (a systemd node: a netns node
/// shares the host's /etc).
pub fn disable_module<'a>(lab: &'a Lab, node: &str, module: &str) -> Broken<'a> {
    let file = format!("/etc/modprobe.d/netctl-test-{module}.conf");
    Broken::new(lab).node(
        node,
        &format!("printf 'install {module} /bin/false\\n' > {file}"),
        &format!("rm -f {file}"),
    )
}

/// The netns node `i` moved behind a router onto a segment of its own. The router is a
/// namespace with one leg on the lab bridge (.250/24) and, as its other leg, the node's own
/// veth end taken off the bridge (.251/32 on the router's side). The node keeps its address, as
/// a /32 with its default route via .251; the host and the other nodes reach it via .250. So
/// every node still reaches it (SSH included), but only through a gateway: no ARP between it and
/// the others.
pub fn behind_router(lab: &Lab, i: usize, octet: u8) -> Broken<'_> {
    let (lab_name, node) = (&lab.name, lab.node(i));
    let router = format!("{lab_name}-rtr");
    let leg = format!("{lab_name}-ra");
    let veth = format!("nl-{lab_name}-{i}");
    let bridge = format!("nl-{lab_name}-br");
    let addr = address(octet, i);
    let (front, back) = (
        Ipv4Addr::new(10, 240, octet, 250),
        Ipv4Addr::new(10, 240, octet, 251),
    );
    // A router or host route left by a killed run of this test.
    let _ = host(&format!(
        "ip netns del {router}; ip route del {addr}/32; ip link del {leg}"
    ));
    let mut b = Broken::new(lab).host(
        &format!(
            "ip netns add {router} && ip -n {router} link set lo up && \
             ip link add {leg} type veth peer name front netns {router} && \
             ip link set {leg} master {bridge} up && \
             ip -n {router} addr add {front}/24 dev front && ip -n {router} link set front up && \
             ip netns exec {router} sysctl -q -w net.ipv4.ip_forward=1"
        ),
        // The node's veth end goes home first: deleting the router with it inside would delete
        // the node's eth0 too.
        &format!(
            "ip -n {router} link set {veth} netns $$; ip link set {veth} master {bridge} up; \
             ip netns del {router}"
        ),
    );
    b = b.host(
        &format!(
            "ip link set {veth} netns {router} && ip -n {router} addr add {back}/32 dev {veth} && \
             ip -n {router} link set {veth} up && ip -n {router} route add {addr}/32 dev {veth}"
        ),
        "true",
    );
    b = b.node(
        &node,
        &format!(
            "ip addr del {addr}/24 dev eth0 && ip addr add {addr}/32 dev eth0 && \
             ip route add {back}/32 dev eth0 && ip route add default via {back}"
        ),
        &format!(
            "ip route del default; ip route del {back}/32; ip addr del {addr}/32 dev eth0; \
             ip addr add {addr}/24 dev eth0"
        ),
    );
    b = b.host(
        &format!("ip route add {addr}/32 via {front}"),
        &format!("ip route del {addr}/32 via {front}"),
    );
    for other in (1..=lab.nodes).filter(|&o| o != i) {
        b = b.node(
            &lab.node(other),
            &format!("ip route add {addr}/32 via {front}"),
            &format!("ip route del {addr}/32 via {front}"),
        );
    }
    b
}

/// A default route out of the node's lab interface, via the lab's gateway (the host's bridge,
/// which forwards nothing): what a provider that picks the default route's device expects.
pub fn default_route<'a>(lab: &'a Lab, node: &str, octet: u8) -> Broken<'a> {
    let route = format!("default via 10.240.{octet}.1 dev eth0");
    Broken::new(lab).node(
        node,
        &format!("ip route add {route}"),
        &format!("ip route del {route}"),
    )
}

/// A second interface in the node taking the default route, with another address (the Vagrant
/// NAT interface: 10.0.2.15 on every machine): a provider that picks the default route's device
/// picks it instead of the one holding the profile's address. The node's default route before
/// comes back.
pub fn default_route_elsewhere<'a>(lab: &'a Lab, node: &str) -> Broken<'a> {
    let was = lab.exec_ok(node, "ip route show default");
    let restore = match was.trim() {
        "" => String::new(),
        route => format!("; ip route add {route}"),
    };
    Broken::new(lab).node(
        node,
        "ip link add eth1 type veth peer name eth1-nat && ip addr add 10.0.2.15/24 dev eth1 && \
         ip link set eth1-nat up && ip link set eth1 up && ip route replace default via 10.0.2.2 dev eth1",
        &format!("ip link del eth1{restore}"),
    )
}

/// Whether a UDP datagram sent from `from` to `to`:`port` arrives (a receiver in `to`, three
/// tries from `from`).
pub fn udp_arrives(lab: &Lab, from: &str, to: &str, addr: Ipv4Addr, port: u16) -> bool {
    let receiver = format!(
        "exec /usr/bin/python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         s.bind((\"{addr}\", {port})); s.settimeout(3); print(s.recvfrom(64)[0].decode())'"
    );
    let sender = format!(
        "sleep 0.5; for i in 1 2 3; do /usr/bin/python3 -c 'import socket; \
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\"pf-probe\", (\"{addr}\", {port}))'; \
         sleep 0.2; done"
    );
    std::thread::scope(|s| {
        let r = s.spawn(|| lab.exec(to, &receiver));
        lab.exec_ok(from, &sender);
        let out = r.join().unwrap();
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "pf-probe"
    })
}

/// Whether a don't-fragment ping of `size` bytes (the IP packet) from `from` reaches `addr`.
pub fn df_ping(lab: &Lab, from: &str, addr: Ipv4Addr, size: u32) -> bool {
    lab.exec(
        from,
        &format!("ping -c 1 -W 2 -M do -s {} {addr}", size - 28),
    )
    .status
    .success()
}

/// The gateway `ip route get` names from `from` to `addr`, if any.
pub fn gateway_to(lab: &Lab, from: &str, addr: Ipv4Addr) -> Option<String> {
    let out = lab.exec_ok(from, &format!("ip route get {addr}"));
    let mut words = out.split_whitespace();
    words.find(|w| *w == "via")?;
    words.next().map(str::to_string)
}

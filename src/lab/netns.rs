//! Network-namespace nodes (scale: 250 nodes in seconds): a netns with a veth to the lab bridge,
//! and a private mount/UTS namespace whose per-node directories (CNI config, units, kubelet and
//! netctl state, /root) are bind mounts of <node dir>/fs, served by the node's own sshd.
//! `node_init` is that init: netctl re-executed inside the namespaces (`lab node-init`).

use std::convert::Infallible;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cmd::{describe, run_args, run_tolerant};
use super::process::{descendants, pids_in_netns, spawn_detached, Proc};
use super::state::{NodeState, State};
use super::{keys, LabError};

/// Directories each node has its own copy of (bind mounts of <node dir>/fs/...).
pub const NODE_DIRS: &[&str] = &[
    "/etc/cni/net.d",
    "/etc/systemd/system",
    "/run/flannel",
    // netctl's node lock lives here; each node needs its own.
    "/run/netctl",
    "/var/lib/kubelet",
    "/var/lib/netctl",
    "/var/lib/cni",
    "/etc/kubernetes",
    "/etc/sysctl.d",
    // netctl's node prerequisites: a netns node must not write the host's modules-load.d.
    "/etc/modules-load.d",
    "/root",
    "/etc/kube-flannel",
    "/etc/containerd",
    "/usr/local/lib/netctl",
    // `lab up --user`: sudo rights inside the nodes only, never on the host.
    "/etc/sudoers.d",
];

pub fn node_dir(lab_dir: &Path, node: &str) -> PathBuf {
    lab_dir.join("nodes").join(node)
}

/// The node's disk: created once at `lab up`, kept across `lab restart`.
/// Returns the node's host public key.
pub fn prepare(lab_dir: &Path, node: &NodeState) -> Result<String, LabError> {
    let dir = node_dir(lab_dir, &node.name);
    for d in NODE_DIRS {
        let p = dir.join("fs").join(d.trim_start_matches('/'));
        std::fs::create_dir_all(&p).map_err(|e| LabError::io("cannot create", &p, e))?;
    }
    let key = dir.join("ssh_host_ed25519_key");
    keys::generate(&key, &format!("{}@netctl-lab", node.name))?;
    let config = sshd_config(lab_dir, &dir, node.address);
    let path = dir.join("sshd_config");
    std::fs::write(&path, config).map_err(|e| LabError::io("cannot write", &path, e))?;
    keys::public_key(&key)
}

/// The sshd configuration seen to work (reference/LAB-NOTES.md): one listener on the node
/// address, the lab key only, no PAM, many parallel sessions for fleet-wide runs.
fn sshd_config(lab_dir: &Path, dir: &Path, addr: Ipv4Addr) -> String {
    format!(
        "# netctl lab node sshd\n\
         ListenAddress {addr}:22\n\
         HostKey {hk}\n\
         PidFile {pid}\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         UseDNS no\n\
         AuthorizedKeysFile {ak} .ssh/authorized_keys\n\
         MaxStartups 200\n\
         MaxSessions 100\n\
         Subsystem sftp internal-sftp\n",
        hk = dir.join("ssh_host_ed25519_key").display(),
        pid = dir.join("sshd.pid").display(),
        ak = lab_dir.join("authorized_keys").display(),
    )
}

/// Network side of a boot: namespace, veth onto the bridge, address, lo up; then sshd.
/// The caller records `node.process` (and saves state) after each step it needs to undo.
pub fn boot(
    lab_dir: &Path,
    node: &mut NodeState,
    bridge: &str,
    prefix: u8,
) -> Result<(), LabError> {
    boot_with(lab_dir, node, bridge, prefix, |_| Ok(()))
}

/// `boot`, with `more` run on the namespace after eth0 is up and before sshd starts.
fn boot_with(
    lab_dir: &Path,
    node: &mut NodeState,
    bridge: &str,
    prefix: u8,
    more: impl FnOnce(&str) -> Result<(), LabError>,
) -> Result<(), LabError> {
    let ns = node.netns.clone().expect("netns node has a namespace name");
    let veth = node.veth.clone().expect("netns node has a veth name");
    run_args("ip", &["netns", "add", &ns])?;
    // A fixed MAC per address, as a rebooted machine keeps its NIC: otherwise the host's ARP
    // entry for the node points at the old MAC for up to a minute after `lab restart`.
    let mac = super::bridge::mac_for(node.address);
    run_args(
        "ip",
        &[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns",
            &ns,
        ],
    )?;
    run_args("ip", &["link", "set", &veth, "master", bridge, "up"])?;
    let addr = format!("{}/{prefix}", node.address);
    run_args("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
    run_args("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    run_args("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    more(&ns)?;

    let dir = node_dir(lab_dir, &node.name);
    let exe = std::env::current_exe()
        .map_err(|e| LabError::Failed(format!("cannot find the netctl binary: {e}")))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns, "unshare", "--mount", "--uts"])
        .args(["--propagation", "private"])
        .arg(&exe)
        .args(["lab", "node-init", "--hostname", &node.name, "--node-dir"])
        .arg(&dir);
    let what = format!("{}: sshd", node.name);
    node.process = Some(spawn_detached(cmd, &dir.join("init.log"), &what)?);
    Ok(())
}

/// The bastion's network: `eth0` on the lab bridge with `outer` only (a /32 plus a route to the gateway),
/// `eth1` on the internal bridge with `inner`/prefix, so the nodes' subnet is reached through `eth1` alone.
/// Forwarding stays off: the nodes are reachable only by SSH direct-tcpip, which sshd does itself.
pub fn boot_bastion(
    lab_dir: &Path,
    node: &mut NodeState,
    bridges: (&str, &str),
    inner: Ipv4Addr,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<(), LabError> {
    let veth2 = node_veth2(node);
    boot_with(lab_dir, node, bridges.0, 32, |ns| {
        let mac = super::bridge::mac_for(inner);
        run_args(
            "ip",
            &[
                "link", "add", &veth2, "type", "veth", "peer", "name", "eth1", "address", &mac,
                "netns", ns,
            ],
        )?;
        run_args("ip", &["link", "set", &veth2, "master", bridges.1, "up"])?;
        let gw = format!("{gateway}/32");
        run_args("ip", &["-n", ns, "route", "add", &gw, "dev", "eth0"])?;
        let addr = format!("{inner}/{prefix}");
        run_args("ip", &["-n", ns, "addr", "add", &addr, "dev", "eth1"])?;
        run_args("ip", &["-n", ns, "link", "set", "eth1", "up"])?;
        run_args(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=0",
            ],
        )?;
        Ok(())
    })
}

fn node_veth2(node: &NodeState) -> String {
    node.veth2
        .clone()
        .expect("the bastion has a second veth name")
}

/// Undo `boot`: stop the node's containerd and sshd (by their recorded PIDs), whatever is left
/// inside the namespace (it was started in a node the lab made) and those processes' descendants
/// (a runtime's pods run in namespaces of their own under their shim), the namespace and the
/// veth. Safe to repeat.
pub fn halt(node: &mut NodeState) -> Result<(), LabError> {
    super::runtime::stop(node);
    if let Some(p) = node.process.take() {
        p.stop(Duration::from_secs(5));
    }
    if let Some(ns) = &node.netns {
        let ns_path = Path::new("/run/netns").join(ns);
        // All of them first: a shim's pods are re-parented once the shim is gone.
        let mut left: Vec<Proc> = Vec::new();
        for pid in pids_in_netns(&ns_path) {
            left.extend(Proc::of(pid));
            left.extend(descendants(pid).into_iter().filter_map(Proc::of));
        }
        for p in left {
            p.stop(Duration::from_secs(2));
        }
        run_tolerant(
            "ip",
            &["netns", "del", ns],
            &["No such file", "Invalid argument"],
        )?;
    }
    for veth in node.veth.iter().chain(node.veth2.iter()) {
        run_tolerant(
            "ip",
            &["link", "del", veth],
            // The veth may be going away on its own, with its namespace's other end.
            &["Cannot find device", "does not exist", "No such device"],
        )?;
    }
    Ok(())
}

/// Mount points on the host for NODE_DIRS (and sshd's privilege-separation dir), created where
/// missing. Returns what was created, parents first, so tear-down can remove exactly those.
/// `extra`: more mount points (the container runtime's directories).
pub fn ensure_host_dirs(extra: &[&str]) -> Result<Vec<PathBuf>, LabError> {
    let mut created = Vec::new();
    let fixed = ["/run/sshd", "/run/netns"];
    for d in NODE_DIRS.iter().chain(fixed.iter()).chain(extra.iter()) {
        let mut missing = Vec::new();
        let mut p = Path::new(d);
        while !p.exists() {
            missing.push(p.to_path_buf());
            match p.parent() {
                Some(parent) => p = parent,
                None => break,
            }
        }
        for m in missing.into_iter().rev() {
            match std::fs::create_dir(&m) {
                Ok(()) => created.push(m),
                // Another lab made it meanwhile: not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(LabError::io("cannot create", &m, e)),
            }
        }
    }
    Ok(created)
}

/// The hidden `lab node-init`: runs as the node's first process, inside its fresh mount and UTS
/// namespaces (made private by `unshare`), then becomes its sshd.
pub fn node_init(node_dir: &Path, hostname: &str) -> Result<Infallible, LabError> {
    for d in NODE_DIRS {
        let src = node_dir.join("fs").join(d.trim_start_matches('/'));
        bind(&src, Path::new(d))?;
    }
    // Pod network namespaces made inside the node stay inside it.
    private_tmpfs(Path::new("/run/netns"))?;
    std::fs::write("/proc/sys/kernel/hostname", hostname).map_err(|e| {
        LabError::io(
            "cannot set the hostname via",
            "/proc/sys/kernel/hostname",
            e,
        )
    })?;
    let config = node_dir.join("sshd_config");
    let log = node_dir.join("sshd.log");
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-D").arg("-f").arg(&config).arg("-E").arg(&log);
    let err = cmd.exec();
    Err(LabError::Spawn {
        command: describe(&cmd),
        source: err,
    })
}

/// Bind-mount `src` over `target` (in the caller's own, private mount namespace).
pub fn bind(src: &Path, target: &Path) -> Result<(), LabError> {
    mount(Some(src), target, None, libc::MS_BIND | libc::MS_REC, None)
}

/// A small tmpfs over `target`, e.g. /run/netns: what is pinned there stays in this namespace.
pub fn private_tmpfs(target: &Path) -> Result<(), LabError> {
    mount(
        None,
        target,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("size=4m,mode=755"),
    )
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), LabError> {
    let c = |s: &str| CString::new(s).expect("no NUL in lab paths");
    let src_c = c(src.map(|p| p.to_str().unwrap_or("")).unwrap_or("none"));
    let target_c = c(target.to_str().unwrap_or(""));
    let fstype_c = fstype.map(c);
    let data_c = data.map(c);
    // SAFETY: every pointer is a valid NUL-terminated string or null for the call's duration.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(LabError::io(
            "cannot mount onto",
            target,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Every node of a fresh state gets its namespace and link names.
pub fn name_nodes(state: &mut State) {
    for (i, n) in state.nodes.iter_mut().enumerate() {
        n.netns = Some(format!("{}-{}", state.name, n.name));
        n.veth = Some(format!("nl-{}-{}", state.name, i + 1));
    }
}

//! systemd nodes: systemd-nspawn containers booted with real systemd from the cached root,
//! each on its own overlay (upper/work in the node dir) so a node keeps its disk across reboots.
//! nspawn makes the veth (host0 inside, onto the lab bridge) and removes it when it exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cmd::{run, run_tolerant};
use super::process::spawn_detached;
use super::state::NodeState;
use super::{keys, LabError};

pub fn node_dir(lab_dir: &Path, node: &str) -> PathBuf {
    lab_dir.join("nodes").join(node)
}

pub fn merged(lab_dir: &Path, node: &str) -> PathBuf {
    node_dir(lab_dir, node).join("root")
}

/// Mount the node's overlay over the shared read-only root.
pub fn mount_overlay(lab_dir: &Path, node: &NodeState, lower: &Path) -> Result<(), LabError> {
    let dir = node_dir(lab_dir, &node.name);
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for d in [&upper, &work, &root] {
        std::fs::create_dir_all(d).map_err(|e| LabError::io("cannot create", d, e))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&root))?;
    Ok(())
}

/// First-boot identity, written through the overlay into the node's upper: hostname,
/// machine-id, host0's static address (no gateway, no DNS), the lab key for root, and a fresh
/// host key. Returns the host public key.
pub fn provision(
    lab_dir: &Path,
    node: &NodeState,
    prefix: u8,
    client_pub: &str,
) -> Result<String, LabError> {
    let root = merged(lab_dir, &node.name);
    let write = |rel: &str, text: &str, mode: u32| -> Result<(), LabError> {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LabError::io("cannot create", parent, e))?;
        }
        std::fs::write(&p, text).map_err(|e| LabError::io("cannot write", &p, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| LabError::io("cannot chmod", &p, e))
    };
    // Where CNI configuration goes on every node (the netns nodes have it too).
    let cni = root.join("etc/cni/net.d");
    std::fs::create_dir_all(&cni).map_err(|e| LabError::io("cannot create", &cni, e))?;
    write("etc/hostname", &format!("{}\n", node.name), 0o644)?;
    write("etc/machine-id", &format!("{}\n", machine_id()?), 0o444)?;
    write(
        "etc/systemd/network/10-netctl-host0.network",
        &format!(
            "# netctl lab: static address on the lab bridge; no gateway, no DNS.\n\
             [Match]\nName=host0\n\n[Network]\nAddress={}/{prefix}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
            node.address
        ),
        0o644,
    )?;
    write(
        "root/.ssh/authorized_keys",
        &format!("{client_pub}\n"),
        0o600,
    )?;
    let ssh_dir = root.join("root/.ssh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| LabError::io("cannot chmod", &ssh_dir, e))?;
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    keys::generate(&key, &format!("root@{}", node.name))?;
    keys::public_key(&key)
}

/// A random 128-bit id in machine-id form (32 lowercase hex digits).
fn machine_id() -> Result<String, LabError> {
    let p = "/proc/sys/kernel/random/uuid";
    let uuid = std::fs::read_to_string(p).map_err(|e| LabError::io("cannot read", p, e))?;
    Ok(uuid.trim().replace('-', ""))
}

/// Boot the container detached (its own session), console and log to <node dir>/nspawn.log.
pub fn boot(lab_dir: &Path, node: &mut NodeState, bridge: &str) -> Result<(), LabError> {
    let dir = node_dir(lab_dir, &node.name);
    let machine = node
        .machine
        .clone()
        .expect("systemd node has a machine name");
    let mut cmd = Command::new("systemd-nspawn");
    cmd.arg("-D")
        .arg(dir.join("root"))
        .args(["-M", &machine])
        .arg(format!("--network-bridge={bridge}"))
        // PID 1 here is not systemd: no machined to register with, no unit to move into.
        .args(["--register=no", "--keep-unit", "--console=pipe"])
        .args(["--resolv-conf=off", "--timezone=off", "-b"]);
    let what = format!("{}: systemd-nspawn", node.name);
    node.process = Some(spawn_detached(cmd, &dir.join("nspawn.log"), &what)?);
    Ok(())
}

/// A clean shutdown: SIGTERM makes nspawn halt the container (systemd stops its units).
/// If nspawn itself dies (killed hard), the container's systemd would live on as an orphan
/// holding the node's veth: it is ended too, by the PID it had under this nspawn.
pub fn halt(node: &mut NodeState) {
    if let Some(p) = node.process.take() {
        let leader =
            crate::lab::process::container_leader(&p).and_then(crate::lab::process::Proc::of);
        p.stop(Duration::from_secs(60));
        if let Some(l) = leader.filter(|l| l.alive()) {
            l.stop(Duration::from_secs(5));
        }
    }
}

pub fn unmount(lab_dir: &Path, node: &mut NodeState) -> Result<(), LabError> {
    if node.overlay_mounted {
        let root = merged(lab_dir, &node.name);
        let r = root.to_str().expect("lab paths are UTF-8");
        run_tolerant("umount", &[r], &["not mounted", "no mount point"])?;
        node.overlay_mounted = false;
    }
    Ok(())
}

//! A real container runtime on netns lab nodes (`lab up --runtime containerd`): one containerd
//! (Debian's, with runc) per node, so containerd itself judges the CNI configuration netctl leaves
//! on the node: CRI `Status` says whether the config loads, `RunPodSandbox` whether pods get
//! addresses. What was seen to work on these machines is in reference/LAB-NOTES.md.
//!
//! containerd runs in the node's network namespace but in a mount namespace of its own made from
//! the host's (`ip netns exec` would mount a fresh /sys without the cgroup mounts runc needs), with
//! the node's directories bind-mounted over the host's exactly as the node's sshd sees them: the
//! node's /etc/containerd/config.toml, /etc/cni/net.d and /var/lib/cni (the IPAM store, shared with
//! verify's test pods) are the files netctl edits over SSH. /var/lib/containerd and /run/containerd
//! are per-node directories of the lab, so the config keeps containerd's default paths and the CRI
//! socket is reachable from the host at `socket()`.

use std::convert::Infallible;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cmd::{describe, run};
use super::netns::{self, node_dir, NODE_DIRS};
use super::process::spawn_detached;
use super::state::NodeState;
use super::{sandbox_image, LabError};

/// The container runtime a lab's nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// containerd with runc (Debian packages containerd, runc).
    Containerd,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
        }
    }
}

/// Host directories the runtime's mount namespace covers with per-node ones.
pub const RUNTIME_DIRS: &[&str] = &["/var/lib/containerd", "/run/containerd"];

/// Where containerd keeps its files for `node`, seen from the host.
pub fn runtime_dir(lab_dir: &Path, node: &str) -> PathBuf {
    node_dir(lab_dir, node).join("runtime")
}

/// The node's CRI socket, seen from the host (containerd's default /run/containerd/containerd.sock
/// inside its mount namespace).
pub fn socket(lab_dir: &Path, node: &str) -> PathBuf {
    runtime_dir(lab_dir, node).join("run/containerd.sock")
}

/// containerd's output (info level: every CRI call, so a pull attempt shows as "PullImage").
pub fn log_path(lab_dir: &Path, node: &str) -> PathBuf {
    runtime_dir(lab_dir, node).join("containerd.log")
}

/// The node's own containerd config, as the node sees it (/etc/containerd/config.toml).
pub fn config_path(lab_dir: &Path, node: &str) -> PathBuf {
    node_dir(lab_dir, node).join("fs/etc/containerd/config.toml")
}

/// The operator's containerd config, so to speak: the settings this machine needs to run a pod at
/// all, and a CNI section with containerd's defaults, which netctl's init edits to the profile's
/// directories. Every other line is one netctl must keep.
pub fn config() -> String {
    format!(
        r#"# The lab's containerd configuration (written by `netctl lab up --runtime containerd`).
# Lab workarounds for this machine, not advice for real nodes: see docs/lab.md.
version = 2
# Plugins the lab has no use for; "opt" would write to the host's /opt/containerd.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[plugins."io.containerd.grpc.v1.cri"]
  # Made locally and imported at `lab up`: the runtime must never pull.
  sandbox_image = "{image}"
  # root here lacks CAP_SYS_RESOURCE ("write to /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  # Hybrid cgroups that this root may not change: pods run without cgroup limits.
  disable_cgroup = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
"#,
        image = sandbox_image::NAME
    )
}

/// The node's runtime files, written once at `lab up`: its config and its containerd directories.
pub fn prepare(lab_dir: &Path, node: &str) -> Result<(), LabError> {
    let dir = runtime_dir(lab_dir, node);
    for sub in ["lib", "run"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| LabError::io("cannot create", &p, e))?;
    }
    let path = config_path(lab_dir, node);
    std::fs::write(&path, config()).map_err(|e| LabError::io("cannot write", &path, e))
}

/// Start the node's containerd (its namespaces exist: `netns::boot` ran) and wait until it answers.
/// The process is recorded in `node.runtime` before the wait, so a containerd that never answers
/// is still stopped by `lab down`.
pub fn start(lab_dir: &Path, node: &mut NodeState) -> Result<(), LabError> {
    let ns = node.netns.clone().expect("netns node has a namespace name");
    let dir = node_dir(lab_dir, &node.name);
    let exe = std::env::current_exe()
        .map_err(|e| LabError::Failed(format!("cannot find the netctl binary: {e}")))?;
    let sock = socket(lab_dir, &node.name);
    // A socket left by a containerd that was killed would make the wait below succeed at once.
    let _ = std::fs::remove_file(&sock);
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .args(["unshare", "--mount", "--propagation", "private"])
        .arg(&exe)
        .args(["lab", "runtime-init", "--node-dir"])
        .arg(&dir);
    let what = format!("{}: containerd", node.name);
    let log = log_path(lab_dir, &node.name);
    node.runtime = Some(spawn_detached(cmd, &log, &what)?);
    wait_ready(&sock, &log, Duration::from_secs(30))
}

/// Wait until containerd answers on `sock` (`ctr version`).
fn wait_ready(sock: &Path, log: &Path, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if sock.exists()
            && ctr(sock)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("containerd on {} (see {})", sock.display(), log.display()),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ctr` against the node's containerd, in the CRI plugin's namespace.
fn ctr(sock: &Path) -> Command {
    let mut c = Command::new("ctr");
    c.arg("--address").arg(sock).args(["--namespace", "k8s.io"]);
    c
}

/// Import the sandbox image into the node's image store, unpacked for the native snapshotter,
/// and check it is there under its full name.
pub fn import_image(lab_dir: &Path, node: &str, archive: &Path) -> Result<(), LabError> {
    let sock = socket(lab_dir, node);
    run(ctr(&sock)
        .args(["images", "import", "--snapshotter", "native"])
        .arg(archive))?;
    let names = run(ctr(&sock).args(["images", "ls", "--quiet"]))?;
    if !names.lines().any(|l| l == sandbox_image::NAME) {
        return Err(LabError::Failed(format!(
            "{node}: the imported sandbox image is not listed as {} (images: {})",
            sandbox_image::NAME,
            names.trim()
        )));
    }
    Ok(())
}

/// Stop the node's containerd (SIGTERM, then SIGKILL). Its shims and pods outlive it by design;
/// `netns::halt` stops those with the rest of the node.
pub fn stop(node: &mut NodeState) {
    if let Some(p) = node.runtime.take() {
        p.stop(Duration::from_secs(10));
    }
}

/// The hidden `lab runtime-init`: in a fresh private mount namespace (from `unshare`), cover the
/// host's directories with the node's, then become containerd.
pub fn runtime_init(node_dir: &Path) -> Result<Infallible, LabError> {
    for d in NODE_DIRS {
        let src = node_dir.join("fs").join(d.trim_start_matches('/'));
        netns::bind(&src, Path::new(d))?;
    }
    let own = node_dir.join("runtime");
    netns::bind(&own.join("lib"), Path::new("/var/lib/containerd"))?;
    netns::bind(&own.join("run"), Path::new("/run/containerd"))?;
    // Pod network namespaces (containerd pins them under /var/run/netns) stay in this namespace.
    netns::private_tmpfs(Path::new("/run/netns"))?;
    let mut cmd = Command::new("containerd");
    cmd.args([
        "--config",
        "/etc/containerd/config.toml",
        "--log-level",
        "info",
    ]);
    let err = cmd.exec();
    Err(LabError::Spawn {
        command: describe(&cmd),
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_local_image_and_has_a_cni_section_to_edit() {
        let c = config();
        assert!(c.contains(&format!("sandbox_image = \"{}\"", sandbox_image::NAME)));
        assert!(c.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/opt/cni/bin\"\n    conf_dir = \"/etc/cni/net.d\"\n"
        ));
        for workaround in [
            "restrict_oom_score_adj = true",
            "disable_cgroup = true",
            "snapshotter = \"native\"",
        ] {
            assert!(c.contains(workaround), "{workaround}");
        }
    }

    #[test]
    fn socket_is_under_the_node_directory() {
        let s = socket(Path::new("/var/lib/netctl-lab/rt"), "node-1");
        assert_eq!(
            s,
            Path::new("/var/lib/netctl-lab/rt/nodes/node-1/runtime/run/containerd.sock")
        );
    }
}

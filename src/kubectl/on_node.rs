//! kubectl on a node (`kubernetes.kubectlOn`): where the admin kubeconfig lives on a controller,
//! as in the hard-way guides. One SSH session for the whole run, served by its own thread and
//! runtime, so `Kubectl::run` stays a plain blocking call wherever it is made from. Each call is
//! one script: the files kubectl reads (manifests, kustomizations) unpacked into a temporary
//! directory that is removed again, then kubectl itself, its exit status and output passed back.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;

use super::KubectlError;
use crate::phase::connect;
use crate::profile::Cluster;
use crate::provider::sh_quote;
use crate::transport::Output;

/// An upper bound for one kubectl call: the calls netctl makes carry their own, shorter
/// timeouts (`wait --timeout=300s`); this only keeps a hung node from hanging the run.
const CALL_LIMIT: Duration = Duration::from_secs(900);

type Reply = Result<Output, String>;

pub struct OnNode {
    pub node: String,
    requests: Option<mpsc::Sender<(String, mpsc::Sender<Reply>)>>,
    worker: Option<JoinHandle<()>>,
}

impl OnNode {
    /// Connect to `node` as the profile says (ssh config, bastion, sudo; host keys checked, an
    /// unknown one learned only with `accept_new_host_keys`, as for every other connection).
    pub fn connect(
        cluster: &Cluster,
        node: &str,
        accept_new_host_keys: bool,
    ) -> Result<OnNode, KubectlError> {
        let failed = |message: String| KubectlError::Node {
            node: node.to_string(),
            message,
        };
        let target = cluster
            .nodes
            .iter()
            .find(|n| n.name == node)
            .cloned()
            .ok_or_else(|| failed("not a node of the profile".into()))?;
        let cluster = cluster.clone();
        let (requests, incoming) = mpsc::channel::<(String, mpsc::Sender<Reply>)>();
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let worker = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let remote = match rt.block_on(connect::connect(
                &cluster,
                &target,
                accept_new_host_keys,
                false,
            )) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while let Ok((script, reply)) = incoming.recv() {
                let out = rt.block_on(remote.probe_for(&script, CALL_LIMIT));
                let _ = reply.send(out.map_err(|e| e.to_string()));
            }
            rt.block_on(remote.close());
        });
        match ready.recv() {
            Ok(Ok(())) => Ok(OnNode {
                node: node.to_string(),
                requests: Some(requests),
                worker: Some(worker),
            }),
            Ok(Err(message)) => Err(failed(message)),
            Err(_) => Err(failed("the SSH worker ended before connecting".into())),
        }
    }

    /// Run one script on the node; its output whatever its exit status.
    pub fn run(&self, script: String) -> Result<Output, String> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .expect("open until dropped")
            .send((script, reply))
            .map_err(|_| "the SSH session to the node has ended".to_string())?;
        answer
            .recv()
            .map_err(|_| "the SSH session to the node has ended".to_string())?
    }
}

impl Drop for OnNode {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; it closes the session and exits.
        self.requests.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The files under `dir` (none for "."), relative to it: what a kubectl call in `dir` may read.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if dir == Path::new(".") {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push((rel.to_string_lossy().into_owned(), std::fs::read(&p)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The script for one call: unpack `files` into a fresh temporary directory (removed on exit),
/// then run kubectl there. Everything from outside is quoted; file bodies travel as base64 in
/// quoted here-documents, so no byte of them is read by the shell.
pub fn script(files: &[(String, Vec<u8>)], kubeconfig: Option<&str>, args: &[String]) -> String {
    let mut s = String::from(
        "set -e\n\
         command -v kubectl >/dev/null 2>&1 || { echo 'kubectl is not on PATH on this node' >&2; exit 127; }\n\
         d=$(mktemp -d /tmp/netctl-kubectl.XXXXXX)\n\
         trap 'rm -rf \"$d\"' EXIT\n",
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    for (rel, body) in files {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            s.push_str(&format!("mkdir -p \"$d\"/{}\n", sh_quote(parent)));
        }
        s.push_str(&format!(
            "base64 -d > \"$d\"/{} <<'NETCTL_FILE_END'\n",
            sh_quote(rel)
        ));
        let enc = b64.encode(body);
        for chunk in enc.as_bytes().chunks(76) {
            s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            s.push('\n');
        }
        s.push_str("NETCTL_FILE_END\n");
    }
    s.push_str("cd \"$d\"\nkubectl");
    if let Some(k) = kubeconfig {
        // A ~/ path means the SSH user's home on the node (root's, through sudo).
        let k = match k.strip_prefix("~/") {
            Some(rest) => format!("\"$HOME\"/{}", sh_quote(rest)),
            None => sh_quote(k),
        };
        s.push_str(&format!(" --kubeconfig {k}"));
    }
    for a in args {
        s.push(' ');
        s.push_str(&sh_quote(a));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script, run by a real shell with a stand-in kubectl on PATH: files arrive byte for byte
    /// under their relative paths, arguments arrive as given, and the directory is gone after.
    #[test]
    fn the_script_unpacks_files_and_passes_arguments() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = t.path().join("log");
        std::fs::write(
            bin.join("kubectl"),
            format!(
                "#!/bin/sh\n{{ pwd; for a; do echo \"[$a]\"; done; cat calico/kustomization.yaml; }} > {}\necho out; echo err >&2; exit 3\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            bin.join("kubectl"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let files = vec![(
            "calico/kustomization.yaml".to_string(),
            b"resources: ['$(touch /tmp/x)']\n\x00\xff".to_vec(),
        )];
        let args: Vec<String> = ["apply", "-k", "calico", "it's"].map(String::from).to_vec();
        let s = script(&files, Some("~/admin.kubeconfig"), &args);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&s)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", "/home/ops")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let logged = std::fs::read(&log).unwrap();
        let text = String::from_utf8_lossy(&logged);
        let dir = text.lines().next().unwrap().to_string();
        assert!(dir.starts_with("/tmp/netctl-kubectl."), "{text}");
        assert!(!Path::new(&dir).exists(), "the temp dir is removed");
        assert!(
            text.contains(
                "[--kubeconfig]\n[/home/ops/admin.kubeconfig]\n[apply]\n[-k]\n[calico]\n[it's]\n"
            ),
            "{text}"
        );
        assert!(logged.ends_with(b"resources: ['$(touch /tmp/x)']\n\x00\xff"));
    }

    #[test]
    fn no_kubectl_on_the_node_is_named() {
        let s = script(&[], None, &["version".into()]);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&s)
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kubectl is not on PATH on this node")
        );
    }

    #[test]
    fn files_under_a_directory_are_relative() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("calico")).unwrap();
        std::fs::write(t.path().join("calico/k.yaml"), "k").unwrap();
        std::fs::write(t.path().join("a.yaml"), "a").unwrap();
        assert_eq!(
            files_under(t.path()).unwrap(),
            [
                ("a.yaml".to_string(), b"a".to_vec()),
                ("calico/k.yaml".to_string(), b"k".to_vec())
            ]
        );
        assert!(files_under(Path::new(".")).unwrap().is_empty());
    }
}

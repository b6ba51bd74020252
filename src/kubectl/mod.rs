//! kubectl, run on the operator's machine: found with `which` (or NETCTL_KUBECTL, which tests
//! point at a stand-in that records its arguments), given the profile's kubeconfig; or, with
//! `kubernetes.kubectlOn`, run on that node over SSH (on_node.rs).

mod on_node;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::profile::{expand_home, Cluster};
use crate::provider::{ClusterPlan, KubectlStep};

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("kubectl is needed to {step}, but it is not on PATH (install kubectl, or set NETCTL_KUBECTL)")]
    Missing { step: String },
    #[error("kubectl {args}: exit {status}: {stderr}")]
    Failed {
        args: String,
        status: i32,
        stderr: String,
    },
    #[error("kubectl {args}: {source}")]
    Io {
        args: String,
        source: std::io::Error,
    },
    #[error("kubectl on {node} (kubernetes.kubectlOn): {message}")]
    Node { node: String, message: String },
    #[error("{field}: cannot read {path}: {source}")]
    Copy {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Kubectl {
    runner: Runner,
    /// Local, or with kubernetes.kubectlOn a path on that node.
    kubeconfig: Option<PathBuf>,
}

enum Runner {
    /// The program on this machine.
    Local(PathBuf),
    /// `kubectl` on the kubectlOn node.
    Node(on_node::OnNode),
    /// A recording stand-in (unit tests): answers each call by its arguments.
    #[cfg(test)]
    Fake(std::sync::Arc<fake::Fake>),
}

/// Why cluster steps cannot run for this profile, if they cannot.
pub fn unavailable_reason(cluster: &Cluster) -> Option<String> {
    let k = &cluster.profile.kubernetes;
    if k.kubeconfig.is_none() && k.kubectl_on.is_none() {
        return Some(
            "no cluster API configured (set kubernetes.kubeconfig, or kubernetes.kubectlOn)".into(),
        );
    }
    None
}

impl Kubectl {
    /// kubectl for `step` (named when it cannot be found); with `kubernetes.kubectlOn`, a session
    /// to that node that trusts a new host key only with `accept_new_host_keys`.
    pub fn find(
        cluster: &Cluster,
        step: &str,
        accept_new_host_keys: bool,
    ) -> Result<Kubectl, KubectlError> {
        let k = &cluster.profile.kubernetes;
        if let Some(node) = &k.kubectl_on {
            return Ok(Kubectl {
                runner: Runner::Node(on_node::OnNode::connect(
                    cluster,
                    node,
                    accept_new_host_keys,
                )?),
                // A path on that node: not expanded here.
                kubeconfig: k.kubeconfig.as_deref().map(PathBuf::from),
            });
        }
        let program = match std::env::var_os("NETCTL_KUBECTL") {
            Some(p) => PathBuf::from(p),
            None => which::which("kubectl").map_err(|_| KubectlError::Missing {
                step: step.to_string(),
            })?,
        };
        Ok(Kubectl {
            runner: Runner::Local(program),
            kubeconfig: cluster
                .profile
                .kubernetes
                .kubeconfig
                .as_deref()
                .map(expand_home),
        })
    }

    /// `run` off the async workers: kubectl blocks (a drain or a wait, up to minutes), and the
    /// SSH work of every other node goes on meanwhile.
    pub async fn call(
        self: &Arc<Self>,
        args: &[String],
        cwd: &Path,
    ) -> Result<String, KubectlError> {
        let (k, args, cwd) = (self.clone(), args.to_vec(), cwd.to_path_buf());
        tokio::task::spawn_blocking(move || k.run(&args, &cwd))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// A kubectl whose calls `fake` records and answers.
    #[cfg(test)]
    pub fn fake(fake: std::sync::Arc<fake::Fake>) -> Kubectl {
        Kubectl {
            runner: Runner::Fake(fake),
            kubeconfig: None,
        }
    }

    pub fn run(&self, args: &[String], cwd: &Path) -> Result<String, KubectlError> {
        let program = match &self.runner {
            Runner::Node(on) => return self.run_on(on, args, cwd),
            Runner::Local(program) => program,
            #[cfg(test)]
            Runner::Fake(f) => return f.run(args),
        };
        let mut cmd = Command::new(program);
        // kubectl runs exec credential plugins: none of netctl's secrets is theirs.
        for name in crate::transport::secrets::ENV_NAMES {
            cmd.env_remove(name);
        }
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        let shown = args.join(" ");
        let out = cmd
            .args(args)
            .current_dir(cwd)
            .output()
            .map_err(|source| KubectlError::Io {
                args: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(KubectlError::Failed {
                args: shown,
                status: out.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run_on(
        &self,
        on: &on_node::OnNode,
        args: &[String],
        cwd: &Path,
    ) -> Result<String, KubectlError> {
        let shown = format!("{} (on {})", args.join(" "), on.node);
        let files = on_node::files_under(cwd).map_err(|source| KubectlError::Io {
            args: shown.clone(),
            source,
        })?;
        let kubeconfig = self.kubeconfig.as_deref().map(|p| p.to_string_lossy());
        let script = on_node::script(&files, kubeconfig.as_deref(), args);
        let out = on.run(script).map_err(|message| KubectlError::Node {
            node: on.node.clone(),
            message,
        })?;
        if out.status != 0 {
            return Err(KubectlError::Failed {
                args: shown,
                status: out.status as i32,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Get a resource as JSON.
    pub fn get_json(&self, args: &[&str]) -> Result<serde_json::Value, KubectlError> {
        let mut a: Vec<String> = vec!["get".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        a.extend(["-o".into(), "json".into()]);
        let out = self.run(&a, Path::new("."))?;
        serde_json::from_str(&out).map_err(|e| KubectlError::Failed {
            args: a.join(" "),
            status: 0,
            stderr: format!("output is not JSON: {e}"),
        })
    }
}

/// Write the cluster plan's files (and copied manifests) into `dir`, as `render` does under
/// cluster/. `dir` is a fresh `tempdir::PrivateDir`: each file is created new with mode 0600,
/// never through an existing file or symlink (kubectl then applies exactly what netctl wrote).
pub fn write_cluster_files(plan: &ClusterPlan, dir: &Path) -> Result<(), KubectlError> {
    let io = |path: &Path, source| KubectlError::Copy {
        field: "render".into(),
        path: path.to_path_buf(),
        source,
    };
    for f in &plan.files {
        crate::tempdir::write_new(dir, &f.path, f.content.as_bytes())
            .map_err(|e| io(&dir.join(&f.path), e))?;
    }
    for c in &plan.copies {
        let src = expand_home(&c.source);
        let content = std::fs::read(&src).map_err(|source| KubectlError::Copy {
            field: c.field.clone(),
            path: src.clone(),
            source,
        })?;
        crate::tempdir::write_new(dir, &c.path, &content).map_err(|e| io(&dir.join(&c.path), e))?;
    }
    Ok(())
}

pub fn describe(step: &KubectlStep) -> String {
    format!("kubectl {}", step.args.join(" "))
}

/// The stand-in behind `Kubectl::fake`: every call is logged; the first rule that answers a call's
/// arguments gives its result, otherwise it succeeds with no output.
#[cfg(test)]
pub mod fake {
    use std::sync::Mutex;

    use super::KubectlError;

    type Rule = Box<dyn Fn(&[String]) -> Option<Result<String, KubectlError>> + Send + Sync>;

    #[derive(Default)]
    pub struct Fake {
        rules: Mutex<Vec<Rule>>,
        log: Mutex<Vec<String>>,
    }

    impl Fake {
        pub fn on(
            &self,
            rule: impl Fn(&[String]) -> Option<Result<String, KubectlError>> + Send + Sync + 'static,
        ) {
            self.rules.lock().unwrap().push(Box::new(rule));
        }

        /// Fail every call whose joined arguments start with `prefix`.
        pub fn fail(&self, prefix: &'static str) {
            self.on(move |a| {
                let shown = a.join(" ");
                shown.starts_with(prefix).then(|| {
                    Err(KubectlError::Failed {
                        args: shown,
                        status: 1,
                        stderr: "refused by the test".into(),
                    })
                })
            });
        }

        /// The calls so far, each its arguments joined by spaces.
        pub fn calls(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        pub(super) fn run(&self, args: &[String]) -> Result<String, KubectlError> {
            self.log.lock().unwrap().push(args.join(" "));
            let rules = self.rules.lock().unwrap();
            rules
                .iter()
                .find_map(|r| r(args))
                .unwrap_or_else(|| Ok(String::new()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ClusterFile, CopiedFile};

    fn plan(source: &Path) -> ClusterPlan {
        ClusterPlan {
            files: vec![ClusterFile {
                path: "kube-flannel.yaml".into(),
                content: "kind: DaemonSet\n".into(),
            }],
            copies: vec![CopiedFile {
                path: "calico/calico.yaml".into(),
                source: source.to_string_lossy().into_owned(),
                field: "networking.calico.manifestFile".into(),
            }],
            ..ClusterPlan::default()
        }
    }

    /// Issue 10, finding 2: a manifest written into a directory someone else prepared followed a
    /// planted symlink and overwrote its target.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let source = t.path().join("calico.yaml");
        std::fs::write(&source, "kind: List\n").unwrap();
        for planted in ["kube-flannel.yaml", "calico/calico.yaml"] {
            let dir = t.path().join(planted.replace('/', "_"));
            let link = dir.join(planted);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            assert!(
                write_cluster_files(&plan(&source), &dir).is_err(),
                "{planted}"
            );
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "keep",
                "{planted}"
            );
        }
    }

    #[test]
    fn files_and_copies_are_written_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let source = t.path().join("calico.yaml");
        std::fs::write(&source, "kind: List\n").unwrap();
        let dir = crate::tempdir::PrivateDir::new_in(t.path(), "netctl-test-").unwrap();
        write_cluster_files(&plan(&source), dir.path()).unwrap();
        for (rel, want) in [
            ("kube-flannel.yaml", "kind: DaemonSet\n"),
            ("calico/calico.yaml", "kind: List\n"),
        ] {
            let p = dir.path().join(rel);
            assert_eq!(std::fs::read_to_string(&p).unwrap(), want);
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{rel}");
        }
    }
}

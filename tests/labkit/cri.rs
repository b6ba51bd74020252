//! A CRI client for lab tests: talks to a node's containerd over its socket exactly as the kubelet
//! does (CRI v1 RuntimeService: Status, RunPodSandbox, PodSandboxStatus, StopPodSandbox,
//! RemovePodSandbox), so the runtime itself says whether netctl's CNI configuration works.
//! Blocking calls over a small tokio runtime: the tests themselves are plain #[test]s.
//!
//! The messages are written out by hand (module `v1`) rather than generated from the kubelet's
//! api.proto: generated bindings (the k8s-cri crate) need protoc and a build script, and compile
//! the whole v1 and v1alpha2 APIs, for five calls and a dozen fields (docs/benchmarks.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_prost::ProstCodec;

pub mod v1;

use v1::{
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, PodSandboxStatusResponse,
    RemovePodSandboxRequest, RemovePodSandboxResponse, RunPodSandboxRequest, RunPodSandboxResponse,
    StatusRequest, StatusResponse, StopPodSandboxRequest, StopPodSandboxResponse,
};

pub struct Cri {
    rt: tokio::runtime::Runtime,
    grpc: Grpc<Channel>,
    socket: PathBuf,
}

/// The runtime's NetworkReady condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkReady {
    pub ready: bool,
    /// reason and message, e.g. "NetworkPluginNotReady: cni config load failed: ..."
    pub why: String,
}

/// What PodSandboxStatus says about a sandbox's network.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub ip: String,
    /// The network namespace path from the verbose status (the runtime spec's network namespace).
    pub netns: String,
    /// The sandbox process (verbose status).
    pub pid: u32,
}

impl Cri {
    /// Connect to the CRI socket at `socket` (a unix socket path on this machine).
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                // The URI is unused: every connection goes to the unix socket.
                Endpoint::try_from("http://[::1]:50051")
                    .expect("endpoint")
                    // A RunPodSandbox runs the CNI plugins; a wedged runtime fails the test instead.
                    .timeout(Duration::from_secs(60))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            })
            .unwrap_or_else(|e| panic!("connect to the CRI socket {}: {e}", socket.display()));
        Cri {
            rt,
            grpc: Grpc::new(channel),
            socket: socket.to_path_buf(),
        }
    }

    /// One unary RuntimeService call; `method` is one of the paths in `v1`.
    fn call<Req, Resp>(&mut self, method: &'static str, req: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let grpc = &mut self.grpc;
        self.rt.block_on(async move {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unknown(format!("CRI channel not ready: {e}")))?;
            let resp = grpc
                .unary(
                    tonic::Request::new(req),
                    PathAndQuery::from_static(method),
                    ProstCodec::<Req, Resp>::default(),
                )
                .await?;
            Ok(resp.into_inner())
        })
    }

    /// CRI Status: the NetworkReady condition.
    pub fn network_ready(&mut self) -> Result<NetworkReady, tonic::Status> {
        let resp: StatusResponse = self.call(v1::STATUS, StatusRequest { verbose: false })?;
        let cond = resp
            .status
            .unwrap_or_default()
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap_or_else(|| panic!("{}: Status has no NetworkReady", self.socket.display()));
        Ok(NetworkReady {
            ready: cond.status,
            why: format!("{}: {}", cond.reason, cond.message),
        })
    }

    /// RunPodSandbox with a minimal pod config (host network off: the CNI plugins set it up).
    pub fn run_sandbox(&mut self, name: &str) -> Result<String, tonic::Status> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("{name}-{}", std::process::id()),
                namespace: "default".into(),
            }),
            hostname: name.to_string(),
        };
        let req = RunPodSandboxRequest {
            config: Some(config),
        };
        let resp: RunPodSandboxResponse = self.call(v1::RUN_POD_SANDBOX, req)?;
        Ok(resp.pod_sandbox_id)
    }

    /// PodSandboxStatus (verbose): the address and where the sandbox's network namespace is.
    pub fn sandbox(&mut self, id: &str) -> Result<Sandbox, tonic::Status> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        let resp: PodSandboxStatusResponse = self.call(v1::POD_SANDBOX_STATUS, req)?;
        let ip = resp
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        let (netns, pid) = netns_of(&resp.info);
        Ok(Sandbox {
            id: id.to_string(),
            ip,
            netns,
            pid,
        })
    }

    /// StopPodSandbox then RemovePodSandbox (the CNI DEL runs in the stop).
    pub fn remove_sandbox(&mut self, id: &str) -> Result<(), tonic::Status> {
        let _: StopPodSandboxResponse = self.call(
            v1::STOP_POD_SANDBOX,
            StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            },
        )?;
        let _: RemovePodSandboxResponse = self.call(
            v1::REMOVE_POD_SANDBOX,
            RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            },
        )?;
        Ok(())
    }
}

/// containerd's verbose sandbox info ("info": JSON with the sandbox pid and its OCI runtime spec):
/// the network namespace path and the pid.
fn netns_of(info: &HashMap<String, String>) -> (String, u32) {
    let Some(text) = info.get("info") else {
        return (String::new(), 0);
    };
    let v: serde_json::Value = serde_json::from_str(text).expect("verbose info is JSON");
    let path = v["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .unwrap_or_default()
        .to_string();
    (path, v["pid"].as_u64().unwrap_or(0) as u32)
}

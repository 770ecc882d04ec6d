//! A blocking CRI v1 client over containerd's unix socket: the `k8s-cri`
//! crate's generated tonic clients on a current-thread tokio runtime that
//! this struct owns. Every call is bounded by a timeout, and a failed call
//! returns the runtime's own gRPC status message verbatim (that text is what
//! the test asserts on, e.g. containerd's `plugin type="portmap" failed
//! (add): …`).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest,
    ListPodSandboxRequest, PodSandboxConfig, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StatusRequest, StopPodSandboxRequest,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long one CRI call may take before the test gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What `ExecSync` returned.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A connected CRI client (runtime and image services).
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Cri {
    /// Connects to the CRI socket at `socket` (bounded by `CALL_TIMEOUT`).
    pub fn connect(socket: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("building the tokio runtime: {e}"))?;
        let path = socket.to_path_buf();
        // The URI is required by tonic and ignored by the connector.
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(CALL_TIMEOUT);
        let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path: PathBuf = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }));
        let channel = match rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, connect).await })
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("connecting to {}: {e}", socket.display())),
            Err(_) => {
                return Err(format!(
                    "connecting to {}: no answer within {CALL_TIMEOUT:?}",
                    socket.display()
                ))
            }
        };
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            timeout: CALL_TIMEOUT,
        })
    }

    /// Runs one call under the timeout; the error is `<call>: <status message>`.
    fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout, fut).await })
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(format!("{what}: {}", status.message())),
            Err(_) => Err(format!("{what}: no answer within {:?}", self.timeout)),
        }
    }

    /// `Status`: the runtime's conditions as (type, status, reason: message).
    pub fn conditions(&self) -> Result<Vec<(String, bool, String)>, String> {
        let mut c = self.runtime.clone();
        let r = self.call("Status", async move {
            c.status(StatusRequest { verbose: false }).await
        })?;
        Ok(r.status
            .map(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.r#type, c.status, format!("{}: {}", c.reason, c.message)))
            .collect())
    }

    /// `ImageStatus`: whether the runtime knows image `reference`.
    pub fn has_image(&self, reference: &str) -> Result<bool, String> {
        let mut c = self.images.clone();
        let image = Some(ImageSpec {
            image: reference.to_string(),
            ..Default::default()
        });
        let r = self.call("ImageStatus", async move {
            c.image_status(ImageStatusRequest {
                image,
                verbose: false,
            })
            .await
        })?;
        Ok(r.image.is_some())
    }

    /// `RunPodSandbox`; returns the sandbox ID.
    pub fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> Result<String, String> {
        let mut c = self.runtime.clone();
        let config = Some(config.clone());
        let r = self.call("RunPodSandbox", async move {
            c.run_pod_sandbox(RunPodSandboxRequest {
                config,
                runtime_handler: String::new(),
            })
            .await
        })?;
        Ok(r.pod_sandbox_id)
    }

    /// `PodSandboxStatus` (verbose): the state (0 ready, 1 not ready), the
    /// pod IP and containerd's `info` JSON (runtime spec, pid, …).
    pub fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus, String> {
        let mut c = self.runtime.clone();
        let pod_sandbox_id = id.to_string();
        let r = self.call("PodSandboxStatus", async move {
            c.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id,
                verbose: true,
            })
            .await
        })?;
        let status = r.status.unwrap_or_default();
        let info = r
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(SandboxStatus {
            ready: status.state == 0,
            ip: status.network.map(|n| n.ip).unwrap_or_default(),
            info,
        })
    }

    /// `ListPodSandbox`: every sandbox ID the runtime has.
    pub fn list_pod_sandboxes(&self) -> Result<Vec<String>, String> {
        let mut c = self.runtime.clone();
        let r = self.call("ListPodSandbox", async move {
            c.list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
        })?;
        Ok(r.items.into_iter().map(|s| s.id).collect())
    }

    /// `StopPodSandbox` (CNI DEL with the netns still there).
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), String> {
        let mut c = self.runtime.clone();
        let pod_sandbox_id = id.to_string();
        self.call("StopPodSandbox", async move {
            c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id })
                .await
        })
        .map(drop)
    }

    /// `RemovePodSandbox` (CNI DEL again, without a netns).
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), String> {
        let mut c = self.runtime.clone();
        let pod_sandbox_id = id.to_string();
        self.call("RemovePodSandbox", async move {
            c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id })
                .await
        })
        .map(drop)
    }

    /// `CreateContainer` + `StartContainer` in sandbox `sandbox_id`; returns
    /// the container ID.
    pub fn start_container(
        &self,
        sandbox_id: &str,
        sandbox_config: &PodSandboxConfig,
        config: &ContainerConfig,
    ) -> Result<String, String> {
        let mut c = self.runtime.clone();
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let created = self.call(
            "CreateContainer",
            async move { c.create_container(req).await },
        )?;
        let mut c = self.runtime.clone();
        let container_id = created.container_id.clone();
        self.call("StartContainer", async move {
            c.start_container(StartContainerRequest { container_id })
                .await
        })?;
        Ok(created.container_id)
    }

    /// `ExecSync` of `cmd` in a running container (bounded by `seconds`).
    pub fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[&str],
        seconds: i64,
    ) -> Result<ExecOutput, String> {
        let mut c = self.runtime.clone();
        let req = ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: seconds,
        };
        let r = self.call("ExecSync", async move { c.exec_sync(req).await })?;
        Ok(ExecOutput {
            exit_code: r.exit_code,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        })
    }
}

/// What `PodSandboxStatus` said about one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxStatus {
    pub ready: bool,
    pub ip: String,
    /// containerd's verbose `info` (JSON): `pid`, `runtimeSpec`, …
    pub info: serde_json::Value,
}

impl SandboxStatus {
    /// The sandbox's network namespace path, from its OCI runtime spec.
    pub fn netns_path(&self) -> Option<PathBuf> {
        network_namespace_path(&self.info["runtimeSpec"])
    }
}

/// The `network` namespace path of an OCI runtime spec.
pub fn network_namespace_path(spec: &serde_json::Value) -> Option<PathBuf> {
    spec["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Bandwidth annotations as Kubernetes writes them (bits/s quantities).
pub fn bandwidth_annotations(ingress: &str, egress: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            "kubernetes.io/ingress-bandwidth".to_string(),
            ingress.to_string(),
        ),
        (
            "kubernetes.io/egress-bandwidth".to_string(),
            egress.to_string(),
        ),
    ])
}

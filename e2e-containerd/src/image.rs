//! The test image: an OCI image-layout tarball built on the spot from the
//! host's static busybox (Debian's `busybox-static`), because no registry is
//! reachable. One uncompressed layer (`/bin/busybox` and the applet links the
//! test uses), an image config whose entrypoint sleeps forever (so the same
//! image serves as the pod sandbox image and as the workload image), and an
//! index naming it for `ctr images import`. Writes only under the given dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked into `/bin` (the entrypoint uses `/bin/busybox` itself).
const APPLETS: &[&str] = &["sh", "cat", "echo", "nc", "sleep", "ls"];

/// Builds `<dir>/image.tar` for image reference `reference` (e.g.
/// `localhost/cnt-e2e/busybox:1`) and returns its path.
pub fn build_busybox_image(dir: &Path, reference: &str) -> Result<PathBuf, String> {
    let rootfs = dir.join("image-rootfs");
    let layout = dir.join("image-layout");
    let blobs = layout.join("blobs/sha256");
    for d in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        mkdir(&rootfs.join(d))?;
    }
    mkdir(&blobs)?;
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))
        .map_err(|e| format!("copying {BUSYBOX} into the image: {e}"))?;
    for applet in APPLETS {
        let link = rootfs.join("bin").join(applet);
        std::os::unix::fs::symlink("busybox", &link)
            .map_err(|e| format!("linking {}: {e}", link.display()))?;
    }

    let layer = dir.join("layer.tar");
    tar(&rootfs, &layer)?;
    let layer = blob(&blobs, &read(&layer)?)?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [BUSYBOX, "sleep", "2147483647"],
            "Env": ["PATH=/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created_by": "e2e-containerd: /bin/busybox from busybox-static"}],
    });
    let config = blob(&blobs, config.to_string().as_bytes())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.digest,
            "size": config.size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.digest,
            "size": layer.size,
        }],
    });
    let manifest = blob(&blobs, manifest.to_string().as_bytes())?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.digest,
            "size": manifest.size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    write(
        &layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write(&layout.join("index.json"), index.to_string().as_bytes())?;
    let image = dir.join("image.tar");
    tar(&layout, &image)?;
    Ok(image)
}

/// A content-addressed blob: `sha256:<hex>` and its size.
struct Blob {
    digest: String,
    size: usize,
}

fn blob(blobs: &Path, bytes: &[u8]) -> Result<Blob, String> {
    let hex = format!("{:x}", Sha256::digest(bytes));
    write(&blobs.join(&hex), bytes)?;
    Ok(Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    })
}

/// `tar` of a directory's contents, owned by root, in a stable order.
fn tar(dir: &Path, out: &Path) -> Result<(), String> {
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .map_err(|e| format!("running tar: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("tar of {} failed: {status}", dir.display()))
    }
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

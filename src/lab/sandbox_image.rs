//! The pod sandbox image of a lab with a container runtime, made on this machine: an OCI archive
//! with one layer holding a static busybox (Debian's busybox-static) whose entrypoint is `sleep`.
//! The runtime must never pull (the lab has no route out, and a pull attempt is a test failure), so
//! every node imports this archive under the exact name its containerd config names.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::cmd::run;
use super::LabError;

/// The sandbox image's full, normalized name: containerd's CRI looks a short name up as
/// `docker.io/...`, and a name it does not find it pulls.
pub const NAME: &str = "docker.io/netctl/lab-sandbox:1";

/// Where Debian's busybox-static puts its binary (`NETCTL_LAB_BUSYBOX` overrides, for tests).
pub fn busybox() -> PathBuf {
    std::env::var_os("NETCTL_LAB_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// Build the archive at `out` (a path inside the lab directory), working in `work`.
pub fn build(busybox: &Path, work: &Path, out: &Path) -> Result<(), LabError> {
    let bytes = std::fs::read(busybox).map_err(|e| LabError::io("cannot read", busybox, e))?;
    if !is_static_elf(&bytes) {
        // Debian's `busybox` package installs a dynamically linked /bin/busybox too: in an image
        // without a C library it cannot start, and the sandbox would fail for the wrong reason.
        return Err(LabError::MissingPackage {
            package: "busybox-static".into(),
            what: format!(
                "a statically linked busybox ({} is not one)",
                busybox.display()
            ),
        });
    }
    let root = work.join("rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| LabError::io("cannot create", &bin, e))?;
    let target = bin.join("busybox");
    std::fs::copy(busybox, &target).map_err(|e| LabError::io("cannot copy to", &target, e))?;
    let sleep = bin.join("sleep");
    std::os::unix::fs::symlink("busybox", &sleep)
        .map_err(|e| LabError::io("cannot create", &sleep, e))?;

    let layout = work.join("oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| LabError::io("cannot create", &blobs, e))?;
    let layer_tar = work.join("layer.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(&layer_tar)
        .arg("bin"))?;
    let layer =
        std::fs::read(&layer_tar).map_err(|e| LabError::io("cannot read", &layer_tar, e))?;
    let layer_digest = put_blob(&blobs, &layer)?;
    let config = image_config(&layer_digest);
    let config_digest = put_blob(&blobs, config.as_bytes())?;
    let manifest = manifest((&config_digest, config.len()), (&layer_digest, layer.len()));
    let manifest_digest = put_blob(&blobs, manifest.as_bytes())?;
    write(
        &layout.join("index.json"),
        &index(&manifest_digest, manifest.len()),
    )?;
    write(
        &layout.join("oci-layout"),
        "{\"imageLayoutVersion\":\"1.0.0\"}",
    )?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"]))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io("cannot write", path, e))
}

/// Store `data` under its digest; returns "sha256:HEX".
fn put_blob(blobs: &Path, data: &[u8]) -> Result<String, LabError> {
    let hex = hex(&Sha256::digest(data));
    let path = blobs.join(&hex);
    std::fs::write(&path, data).map_err(|e| LabError::io("cannot write", &path, e))?;
    Ok(format!("sha256:{hex}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OCI platform name of this machine (the image holds this machine's busybox).
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The image config: the layer uncompressed, so its diff id is its digest.
fn image_config(layer_digest: &str) -> String {
    serde_json::json!({
        "architecture": architecture(),
        "os": "linux",
        "config": { "Entrypoint": ["/bin/sleep"], "Cmd": ["2147483647"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    })
    .to_string()
}

fn manifest(config: (&str, usize), layer: (&str, usize)) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.0,
            "size": layer.1,
        }],
    })
    .to_string()
}

/// The index names the image twice: `io.containerd.image.name` is the name `ctr images import`
/// gives it as is; the OCI ref name is for other tools.
fn index(manifest_digest: &str, size: usize) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": size,
            "platform": { "architecture": architecture(), "os": "linux" },
            "annotations": {
                "io.containerd.image.name": NAME,
                "org.opencontainers.image.ref.name": NAME,
            },
        }],
    })
    .to_string()
}

/// An ELF file without a program interpreter (PT_INTERP) runs without a dynamic loader.
fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        // Only 64-bit little-endian ELF is expected on the machines the lab runs on.
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        match b.get(o..o + 4) {
            Some(t) => u32::from_le_bytes(t.try_into().expect("4 bytes")) != PT_INTERP,
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with the given program header types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn static_elf_has_no_interpreter() {
        assert!(is_static_elf(&elf(&[1, 1, 4])));
        assert!(!is_static_elf(&elf(&[6, 3, 1])), "PT_INTERP means dynamic");
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        let mut cut = elf(&[1, 1]);
        cut.truncate(64 + 56);
        assert!(!is_static_elf(&cut), "program headers past the end");
    }

    #[test]
    fn index_names_the_image_for_ctr_import() {
        let i: serde_json::Value = serde_json::from_str(&index("sha256:ab", 7)).unwrap();
        let m = &i["manifests"][0];
        assert_eq!(m["annotations"]["io.containerd.image.name"], NAME);
        assert_eq!(m["size"], 7);
        assert!(NAME.starts_with("docker.io/"), "a normalized name");
        let c: serde_json::Value = serde_json::from_str(&image_config("sha256:cd")).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:cd");
        assert_eq!(c["config"]["Entrypoint"][0], "/bin/sleep");
    }
}

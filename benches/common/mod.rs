//! What every benchmark binary shares: building the release binaries it measures.

use std::path::{Path, PathBuf};

/// Builds `pk` and its spawn shim `pk-spawn` in release mode; returns the path of `pk`.
pub fn build_pk() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    #[expect(
        clippy::disallowed_methods,
        reason = "the bench builds the binary it measures"
    )]
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--bins"])
        .current_dir(root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "building pk failed");
    let pk = root.join("target/release/pk");
    assert!(
        pk.with_file_name("pk-spawn").is_file(),
        "pk-spawn must sit next to pk, or every spawn falls back to fork"
    );
    pk
}

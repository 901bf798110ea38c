//! What every benchmark binary shares: building the release binaries it measures.

use std::path::{Path, PathBuf};

/// Builds `pk` in release mode; returns its path. `PK_BENCH_BIN=<path>` measures that binary
/// instead (e.g. a build of an earlier commit, for before/after figures).
pub(crate) fn build_pk() -> PathBuf {
    if let Some(bin) = std::env::var_os("PK_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    #[expect(
        clippy::disallowed_methods,
        reason = "the bench builds the binary it measures"
    )]
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "pk"])
        .current_dir(root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "building pk failed");
    root.join("target/release/pk")
}

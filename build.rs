//! One cfg for the Linux-only code: `native_linux` is set when building for Linux without the
//! `portable` feature. Behind it: cgroups (`process/cgroup.rs`), the vfork/pidfd spawn and the
//! spawner process (`process/vfork.rs`, `process/spawner.rs`), `PR_SET_CHILD_SUBREAPER`
//! (`process/subreaper.rs`), `PR_SET_PDEATHSIG` (`process/spawn.rs`) and the /proc metrics
//! (`metrics/procfs.rs`). Every other build, and `--features portable` on Linux, runs the
//! portable core: process groups, std's spawn, reaping through waitpid, no metrics.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(native_linux)");
    println!("cargo::rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    if linux && !portable {
        println!("cargo::rustc-cfg=native_linux");
    }
}

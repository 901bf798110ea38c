//! The `pk` binary: parse arguments, run, exit with the code the library decided.

use clap::Parser;

fn main() {
    let cli = pk::cli::Cli::parse();
    // Startup hook: processes pk forks must be created here, while pk is still one thread.
    if cli.runs_a_stack() {
        // ~3 descriptors per service; services get the original limit back.
        if let Err(e) = pk::process::raise_fd_limit() {
            eprintln!("pk: cannot raise the open-file limit (many services may not start): {e}");
        }
        if let Err(e) = pk::process::guard::start() {
            eprintln!(
                "pk: cannot start the crash guard ({e}); if pk is killed, the next `pk up` or `pk down` cleans up"
            );
        }
        // From this (the main) thread, which lives as long as pk: every service's parent-death
        // signal follows it. Forked while pk holds few descriptors (the guard's pipe). Linux
        // only (not the portable build, which spawns with std from pk itself).
        #[cfg(native_linux)]
        pk::process::start_spawner();
    }
    let code = pk::cli::run(cli);
    #[cfg(native_linux)]
    pk::process::stop_spawner();
    // Every path out of `run` has cleaned up what it started; the guard has nothing to do.
    pk::process::guard::dismiss();
    std::process::exit(code);
}

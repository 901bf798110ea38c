//! The `pk` binary: parse arguments, run, exit with the code the library decided.

use clap::Parser;

fn main() {
    let cli = pk::cli::Cli::parse();
    // Startup hook: processes pk forks must be created here, while pk is still one thread.
    if cli.runs_a_stack()
        && let Err(e) = pk::process::guard::start()
    {
        eprintln!(
            "pk: cannot start the crash guard ({e}); if pk is killed, the next `pk up` or `pk down` cleans up"
        );
    }
    let code = pk::cli::run(cli);
    // Every path out of `run` has cleaned up what it started; the guard has nothing to do.
    pk::process::guard::dismiss();
    std::process::exit(code);
}

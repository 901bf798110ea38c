//! The `pk` binary: parse arguments, run, exit with the code the library decided.

use clap::Parser;

fn main() {
    let cli = pk::cli::Cli::parse();
    std::process::exit(pk::cli::run(cli));
}

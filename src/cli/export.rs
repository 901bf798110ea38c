//! `pk export systemd|nomad`: load the plan, hand it to a back end (`crate::export`), write the
//! files, print the back end's warnings and how to install what was written.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::export::{self, Export};

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ExportTarget {
    /// systemd units: `<project>-<service>.service` per service and a `<project>.target`.
    Systemd {
        /// User units (`systemctl --user`, `default.target`, `%h` paths).
        #[arg(long)]
        user: bool,
        /// Where to write the units (created if missing).
        #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
        output: PathBuf,
    },
    /// A Nomad job (HCL2): one group, one task per service, lifecycle hooks for the order.
    Nomad {
        /// Write the job here instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// `raw_exec` runs the processes as pk would; `exec` isolates them (chroot).
        #[arg(long, value_enum, default_value = "raw_exec")]
        driver: NomadDriver,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum NomadDriver {
    #[value(name = "raw_exec")]
    RawExec,
    Exec,
}

/// Runs an export; 0 when the files were written (warnings or not), 2 for config or I/O errors.
pub(super) fn export_command(target: ExportTarget, file: &[PathBuf], cwd: &Path) -> i32 {
    let plan = match super::load(file, cwd) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let pk = pk_binary();
    match target {
        ExportTarget::Systemd { user, output } => {
            let options = export::systemd::Options {
                user,
                pk,
                home: std::env::var_os("HOME").map(PathBuf::from),
            };
            let result = export::systemd::export(&plan, &options);
            let dir = cwd.join(output);
            if let Err(code) = write_files(&dir, &result) {
                return code;
            }
            let systemctl = if user {
                "systemctl --user"
            } else {
                "systemctl"
            };
            let prefix = export::systemd::unit_prefix(&plan);
            let dir_shown = dir.display();
            super::print_out(&format!(
                "wrote {} units to {dir_shown}\nto install and start them:\n  {systemctl} link {dir_shown}/{prefix}*.service {dir_shown}/{prefix}.target\n  {systemctl} daemon-reload\n  {systemctl} start {prefix}.target\nto start them at {}: {systemctl} enable {prefix}.target\n",
                result.files.len(),
                if user { "login" } else { "boot" },
            ));
            0
        }
        ExportTarget::Nomad { output, driver } => {
            let options = export::nomad::Options {
                driver: match driver {
                    NomadDriver::RawExec => export::nomad::Driver::RawExec,
                    NomadDriver::Exec => export::nomad::Driver::Exec,
                },
                pk,
            };
            let result = export::nomad::export(&plan, &options);
            for warning in &result.warnings {
                eprintln!("pk export: warning: {warning}");
            }
            let text = result
                .files
                .iter()
                .map(|f| f.text.as_str())
                .collect::<String>();
            let Some(output) = output else {
                super::print_out(&text);
                return 0;
            };
            let path = cwd.join(output);
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("pk export: cannot write {}: {e}", path.display());
                return 2;
            }
            super::print_out(&format!(
                "wrote {}\nto run it: nomad job run {}\n",
                path.display(),
                path.display()
            ));
            0
        }
    }
}

/// Writes every file into `dir` and prints the warnings to stderr.
fn write_files(dir: &Path, result: &Export) -> Result<(), i32> {
    for warning in &result.warnings {
        eprintln!("pk export: warning: {warning}");
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("pk export: cannot create {}: {e}", dir.display());
        return Err(2);
    }
    for file in &result.files {
        let path = dir.join(&file.name);
        if let Err(e) = std::fs::write(&path, &file.text) {
            eprintln!("pk export: cannot write {}: {e}", path.display());
            return Err(2);
        }
    }
    Ok(())
}

/// pk's own executable, which exported units call for probes.
fn pk_binary() -> PathBuf {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("pk"))
}

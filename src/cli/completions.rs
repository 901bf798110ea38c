//! `pk completions <shell>`, `pk man` and the hidden `pk __complete-services` helper.
//!
//! A script is `clap_complete`'s static one for that shell plus a short addition: wherever a
//! service name goes (every positional argument whose value name is [`SERVICE`]), it runs
//! `pk [-f FILE] __complete-services`, which prints the config's service names. Which
//! subcommands take service names, and which of their options take a value, is read from the
//! clap model when the script is written, so the addition cannot drift from the command line.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The value name of every argument that takes a service name.
pub(crate) const SERVICE: &str = "SERVICE";

/// The name of the hidden subcommand the scripts call.
pub(crate) const HELPER: &str = "__complete-services";

/// The shells `pk completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`.
pub(crate) fn script(shell: Shell) -> String {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "pk", &mut out);
    let generated = String::from_utf8_lossy(&out).into_owned();
    let takers = service_takers(&cmd);
    match shell {
        Shell::Bash => generated + &bash_addition(&takers),
        Shell::Zsh => zsh_with_services(&generated),
        Shell::Fish => generated + &fish_addition(&takers),
    }
}

/// The man page (roff): pk's synopsis, description and global options, then a section per
/// subcommand (synopsis, description, options), so one page says everything `--help` does.
pub(crate) fn man_page() -> Vec<u8> {
    let top = super::Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(top.clone());
    let written = man
        .render_title(&mut out)
        .and_then(|()| man.render_name_section(&mut out))
        .and_then(|()| man.render_synopsis_section(&mut out))
        .and_then(|()| man.render_description_section(&mut out))
        .and_then(|()| man.render_options_section(&mut out));
    written.expect("rendering into memory cannot fail");
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("pk {}", sub.get_name());
        let man = clap_mangen::Man::new(sub.clone().bin_name(&name));
        let mut section = Vec::new();
        let written = man
            .render_synopsis_section(&mut section)
            .and_then(|()| man.render_description_section(&mut section))
            .and_then(|()| man.render_options_section(&mut section));
        written.expect("rendering into memory cannot fail");
        let section = String::from_utf8_lossy(&section)
            .replace(".SH SYNOPSIS\n", &format!(".SS \"{name}\"\n"))
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".PP\nOptions:\n");
        out.extend_from_slice(section.as_bytes());
    }
    out
}

/// `pk __complete-services`: the config's service names, one a line; nothing (and exit code
/// 1) when there is no readable config, so a TAB never prints an error into the prompt.
pub(crate) fn complete_services(file: &[PathBuf], cwd: &Path) -> i32 {
    match crate::plan::load_with_warnings(file, cwd) {
        Ok((plan, _warnings)) => {
            let mut names = String::new();
            for service in &plan.services {
                // A replicated service: its declared name (every copy) before the copies.
                if service.replicas > 1 && service.replica == 0 {
                    names.push_str(&service.group);
                    names.push('\n');
                }
                names.push_str(&service.name);
                names.push('\n');
            }
            super::print_out(&names);
            0
        }
        Err(_) => 1,
    }
}

/// A subcommand that takes service names, and its options that take a value (the word after
/// them is that value, not a service).
#[derive(Debug, PartialEq)]
struct Taker {
    name: String,
    valued_options: Vec<String>,
}

fn service_takers(cmd: &clap::Command) -> Vec<Taker> {
    cmd.get_subcommands()
        .filter(|sub| {
            sub.get_positionals().any(|arg| {
                arg.get_value_names()
                    .is_some_and(|names| names.iter().any(|n| n.as_str() == SERVICE))
            })
        })
        .map(|sub| {
            let mut valued_options = Vec::new();
            for arg in sub.get_arguments() {
                // The global `-f` is handled on its own, wherever it appears.
                if arg.is_positional()
                    || arg.is_global_set()
                    || !arg.get_num_args().is_some_and(|n| n.takes_values())
                {
                    continue;
                }
                if let Some(short) = arg.get_short() {
                    valued_options.push(format!("-{short}"));
                }
                if let Some(long) = arg.get_long() {
                    valued_options.push(format!("--{long}"));
                }
            }
            Taker {
                name: sub.get_name().to_owned(),
                valued_options,
            }
        })
        .collect()
}

/// Bash: a function in front of clap's `_pk` that answers for service positions and hands
/// every other position to `_pk`. It calls the pk the user typed (`$1`), with the `-f` they
/// gave.
fn bash_addition(takers: &[Taker]) -> String {
    let valued: Vec<String> = takers
        .iter()
        .flat_map(|t| {
            t.valued_options
                .iter()
                .map(|o| format!("\"{} {o}\"", t.name))
        })
        .collect();
    let subcommands: Vec<&str> = takers.iter().map(|t| t.name.as_str()).collect();
    format!(
        r#"
# Service names (added by pk): `pk restart w<TAB>` asks `pk __complete-services`.
_pk_with_services() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" sub="" file="" in_value=0 i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$w" in
            -f|--file)
                [[ "${{COMP_WORDS[i+1]}}" == "=" ]] && ((i++))
                file="${{COMP_WORDS[i+1]}}"; ((i++))
                ((i >= COMP_CWORD)) && in_value=1
                continue ;;
            --file=*) file="${{w#--file=}}"; continue ;;
            -f?*) file="${{w#-f}}"; continue ;;
        esac
        if [[ -z "$sub" ]]; then
            [[ "$w" == -* ]] || sub="$w"
            continue
        fi
        case "$sub $w" in
            {valued}) ((i++)); ((i >= COMP_CWORD)) && in_value=1 ;;
        esac
    done
    [[ "$cur" == "=" ]] && in_value=1
    if [[ $in_value == 0 && "$cur" != -* ]]; then
        case "$sub" in
            {subs})
                local names
                names="$("$1" ${{file:+-f "$file"}} {HELPER} 2>/dev/null)"
                COMPREPLY=($(compgen -W "$names" -- "$cur"))
                return 0 ;;
        esac
    fi
    _pk "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _pk_with_services -o nosort -o bashdefault -o default pk
else
    complete -F _pk_with_services -o bashdefault -o default pk
fi
"#,
        subs = subcommands.join("|"),
        valued = valued.join("|"),
    )
}

/// Zsh: clap writes `'*::services…:_default'` for each service argument; that action
/// becomes `_pk_services`, defined in front.
fn zsh_with_services(generated: &str) -> String {
    let function = format!(
        r#"
# Service names (added by pk): asks `pk __complete-services`, with the line's -f.
_pk_services() {{
    local -a all names
    local file i
    all=(${{(z)BUFFER}})
    for ((i = 1; i <= $#all; i++)); do
        case ${{all[i]}} in
            -f|--file) file=${{(Q)all[i+1]}} ;;
            --file=*) file=${{(Q)${{all[i]#--file=}}}} ;;
        esac
    done
    names=(${{(f)"$(${{(Q)all[1]}} ${{file:+-f}} ${{file:+$file}} {HELPER} 2>/dev/null)"}})
    compadd -a names
}}
"#
    );
    let mut out = String::with_capacity(generated.len() + function.len());
    for line in generated.lines() {
        if line.starts_with("'*::services") && line.ends_with(":_default' \\") {
            out.push_str(&line.replace(":_default' \\", ":_pk_services' \\"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if line == "autoload -U is-at-least" {
            out.push_str(&function);
        }
    }
    out
}

/// Fish: one more completion for the subcommands that take service names.
fn fish_addition(takers: &[Taker]) -> String {
    let subcommands: Vec<&str> = takers.iter().map(|t| t.name.as_str()).collect();
    format!(
        r#"
# Service names (added by pk): asks `pk __complete-services`, with the line's -f.
function __fish_pk_services
    set -l cmd (commandline -opc)
    set -l file
    for i in (seq 2 (count $cmd))
        switch $cmd[$i]
            case -f --file
                set file $cmd[(math $i + 1)]
            case '--file=*'
                set file (string replace -- '--file=' '' $cmd[$i])
        end
    end
    if test -n "$file"
        $cmd[1] -f $file {HELPER} 2>/dev/null
    else
        $cmd[1] {HELPER} 2>/dev/null
    end
end
complete -c pk -n "__fish_pk_using_subcommand {subs}" -f -a "(__fish_pk_services)"
"#,
        subs = subcommands.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_argument_is_found_in_the_clap_model() {
        let mut cmd = super::super::Cli::command();
        cmd.build();
        let takers = service_takers(&cmd);
        let names: Vec<&str> = takers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["up", "logs", "start", "stop", "restart", "wait"]);
        let up = &takers[0];
        assert!(up.valued_options.contains(&"--color".to_owned()));
        assert!(
            !up.valued_options.contains(&"-f".to_owned()),
            "global: handled apart"
        );
        assert!(!up.valued_options.contains(&"--plain".to_owned()));
    }

    #[test]
    fn zsh_gets_the_service_action_for_every_service_argument() {
        let zsh = script(Shell::Zsh);
        let takers = service_takers(&super::super::Cli::command());
        assert_eq!(zsh.matches(":_pk_services' \\").count(), takers.len());
        assert!(zsh.contains("_pk_services() {"));
    }
}

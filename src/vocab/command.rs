//! Commands as written (`CommandSpec`) and their argv: `shell_argv` skips the shell when it
//! would add nothing but an extra process.
//!
//! Invariant: the shortcut is taken only when running the words directly is indistinguishable
//! from `sh -c` running them — plain words of a conservative character set, and a first word
//! that is neither a shell keyword nor a builtin.

/// Every dash keyword and builtin (plus bash's common extras): a first word the shell itself
/// interprets, so it must go through `sh -c`.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[", "[[", "{", "}", "alias", "bg", "break", "case", "cd", "command",
    "continue", "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export",
    "false", "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill",
    "local", "printf", "pwd", "read", "readonly", "return", "select", "set", "shift", "source",
    "test", "then", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "until", "wait", "while",
];

/// A command as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// Run under `sh -c`.
    Shell(String),
    /// An argv, no shell. Never empty.
    Argv(Vec<String>),
}

impl CommandSpec {
    /// A short human form for lifecycle lines.
    pub(crate) fn display(&self) -> String {
        match self {
            CommandSpec::Shell(s) => s.clone(),
            CommandSpec::Argv(v) => v.join(" "),
        }
    }
}

/// The argv that runs `cmd`.
pub(crate) fn command_argv(cmd: &CommandSpec) -> Vec<String> {
    match cmd {
        CommandSpec::Shell(s) => shell_argv(s),
        CommandSpec::Argv(v) => v.clone(),
    }
}

/// `sh -c CMD` as an argv, or CMD's words when CMD is a simple command.
///
/// Simple means: words separated by spaces or tabs, made only of ASCII letters, digits and
/// `-_./,:@+%`, plus `=` anywhere but the first word (where it would be an assignment), and a
/// first word that is not a shell keyword or builtin. Anything else — quotes, `$`, backquotes,
/// globs, redirections, `;|&()<>{}~#\!`, newlines, non-ASCII — runs under `/bin/sh -c`.
pub fn shell_argv(cmd: &str) -> Vec<String> {
    match simple_words(cmd) {
        Some(words) => words.into_iter().map(str::to_owned).collect(),
        None => vec!["/bin/sh".to_owned(), "-c".to_owned(), cmd.to_owned()],
    }
}

fn simple_words(cmd: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = cmd.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    let (first, rest) = words.split_first()?;
    let plain = |word: &str, allow_equals: bool| {
        word.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'-' | b'_' | b'.' | b'/' | b',' | b':' | b'@' | b'+' | b'%'
                )
                || (allow_equals && byte == b'=')
        })
    };
    let simple = plain(first, false)
        && !SHELL_WORDS.contains(first)
        && rest.iter().all(|word| plain(word, true));
    simple.then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(cmd: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    }

    #[test]
    fn simple_commands_become_their_words() {
        assert_eq!(shell_argv("sleep 1000"), ["sleep", "1000"]);
        assert_eq!(
            shell_argv("  postgres\t-D ./data  "),
            ["postgres", "-D", "./data"]
        );
        assert_eq!(
            shell_argv("cargo run --bin api --features=a,b"),
            ["cargo", "run", "--bin", "api", "--features=a,b"]
        );
        assert_eq!(
            shell_argv("/usr/bin/python3 -m http.server 8080"),
            ["/usr/bin/python3", "-m", "http.server", "8080"]
        );
        assert_eq!(
            shell_argv("curl user@host:80/a+b%20"),
            ["curl", "user@host:80/a+b%20"]
        );
    }

    #[test]
    fn metacharacters_need_the_shell() {
        for cmd in [
            "echo $HOME",
            "ls *.rs",
            "ls file?",
            "ls [ab]",
            "a | b",
            "a && b",
            "a; b",
            "a > out",
            "a < in",
            "a 2>&1",
            "a &",
            "(a)",
            "{ a; }",
            "cat ~/x",
            "a # comment",
            "a 'quoted'",
            "a \"quoted\"",
            "a `b`",
            "a \\n",
            "a\nb",
            "a !b",
            "ls café",
            "a ^b",
        ] {
            assert_eq!(shell_argv(cmd), shell(cmd), "{cmd:?}");
        }
    }

    #[test]
    fn assignments_and_builtins_need_the_shell() {
        for cmd in [
            "FOO=1 app",
            "cd dir",
            "exec app",
            "exit 3",
            "trap x TERM",
            "echo -e hi",
            "if",
            "true",
            "kill 1",
            ". ./env",
        ] {
            assert_eq!(shell_argv(cmd), shell(cmd), "{cmd:?}");
        }
    }

    #[test]
    fn an_empty_command_goes_to_the_shell() {
        assert_eq!(shell_argv(""), shell(""));
        assert_eq!(shell_argv("  \t"), shell("  \t"));
    }
}

//! Which paths matter to a service: under one of its watch paths, and not ignored by the
//! built-in list, its `ignore:` patterns or the `.gitignore` / `.ignore` files around it.
//!
//! Invariants: decides from paths alone (plus the ignore files it reads and caches); never
//! touches a watch. A gitignore matcher is only ever asked about a path relative to its own
//! directory, so the `ignore` crate's "not under the root" panic cannot happen.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::plan::WatchSpec;

/// Directories never watched: version control, and pk's own state and log directory.
pub(crate) const BUILTIN_DIRS: &[&str] = &[".git", ".hg", ".svn", ".jj", ".pk"];

/// Editor swap, backup and probe files (vim, emacs, macOS), never a change worth a restart.
pub(crate) fn is_builtin_ignored_name(name: &str) -> bool {
    BUILTIN_DIRS.contains(&name)
        || name == "4913"
        || name == ".DS_Store"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || [".swp", ".swo", ".swn", ".swx"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// One resolved entry of `watch.paths`.
#[derive(Debug)]
pub(crate) struct Root {
    /// A file or directory (for a glob: the directory before its first glob component).
    pub path: PathBuf,
    glob: Option<GlobMatcher>,
    /// The highest directory whose ignore files apply: the enclosing git work tree, else the
    /// config directory (or the root itself when it lies outside the config directory).
    ignore_top: PathBuf,
}

/// The filter of one service.
#[derive(Debug)]
pub(crate) struct ServiceFilter {
    pub roots: Vec<Root>,
    /// `ignore:` patterns, rooted at the config directory.
    patterns: Gitignore,
    base_dir: PathBuf,
    /// pk's own log files (`log_file` / `log_dir` of every service), with their rotations.
    log_files: Vec<PathBuf>,
}

impl ServiceFilter {
    /// Patterns and globs were checked when the plan was built; a bad one here is skipped.
    pub(crate) fn new(spec: &WatchSpec, base_dir: &Path, log_files: &[PathBuf]) -> ServiceFilter {
        let mut builder = GitignoreBuilder::new(base_dir);
        for pattern in &spec.ignore {
            // Already reported by the plan; unreachable in practice.
            let _ = builder.add_line(None, pattern);
        }
        let patterns = builder.build().unwrap_or_else(|_| Gitignore::empty());
        let roots = spec
            .paths
            .iter()
            .map(|p| Root {
                path: p.path.clone(),
                glob: p.glob.as_ref().and_then(|g| {
                    GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .ok()
                        .map(|g| g.compile_matcher())
                }),
                ignore_top: ignore_top(&p.path, base_dir),
            })
            .collect();
        ServiceFilter {
            roots,
            patterns,
            base_dir: base_dir.to_path_buf(),
            log_files: log_files.to_vec(),
        }
    }

    /// The root `path` lies in (or is), if any.
    fn root_of(&self, path: &Path) -> Option<&Root> {
        self.roots.iter().find(|r| path.starts_with(&r.path))
    }

    /// A change of `path` concerns this service.
    pub(crate) fn is_change(&self, path: &Path, is_dir: bool, files: &mut IgnoreFiles) -> bool {
        let Some(root) = self.root_of(path) else {
            return false;
        };
        if root.glob.as_ref().is_some_and(|g| !g.is_match(path)) {
            return false;
        }
        !self.is_ignored(root, path, is_dir, files)
    }

    /// A directory whose contents this service wants watched.
    pub(crate) fn wants_dir(&self, dir: &Path, files: &mut IgnoreFiles) -> bool {
        self.root_of(dir)
            .is_some_and(|root| !self.is_ignored(root, dir, true, files))
    }

    fn is_ignored(&self, root: &Root, path: &Path, is_dir: bool, files: &mut IgnoreFiles) -> bool {
        let below_root = path.strip_prefix(&root.path).unwrap_or(path);
        if below_root
            .components()
            .any(|c| is_builtin_ignored_name(&c.as_os_str().to_string_lossy()))
            || self.log_files.iter().any(|f| is_log_file(f, path))
        {
            return true;
        }
        let relative = path
            .strip_prefix(&self.base_dir)
            .ok()
            .filter(|r| !r.as_os_str().is_empty());
        if let Some(relative) = relative {
            match self.patterns.matched_path_or_any_parents(relative, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        } else if let Some(name) = path.file_name() {
            // Outside the config directory the patterns still apply to names (`*.log`).
            if self.patterns.matched(Path::new(name), is_dir).is_ignore() {
                return true;
            }
        }
        files.is_ignored(path, is_dir, &root.ignore_top)
    }
}

/// `path` is the log file `file` or one of its rotations (`file.1`, `file.2`, …).
fn is_log_file(file: &Path, path: &Path) -> bool {
    if path == file {
        return true;
    }
    let (Some(name), Some(candidate)) = (file.file_name(), path.file_name()) else {
        return false;
    };
    path.parent() == file.parent()
        && candidate
            .to_string_lossy()
            .strip_prefix(&*name.to_string_lossy())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The enclosing git work tree of `path`, else `base_dir` (or `path` itself outside it).
fn ignore_top(path: &Path, base_dir: &Path) -> PathBuf {
    for dir in path.ancestors() {
        if dir.join(".git").exists() {
            return dir.to_path_buf();
        }
    }
    if path.starts_with(base_dir) {
        base_dir.to_path_buf()
    } else {
        path.to_path_buf()
    }
}

/// `.gitignore` and `.ignore` files, read once per directory and re-read after they change.
#[derive(Debug, Default)]
pub(crate) struct IgnoreFiles {
    dirs: HashMap<PathBuf, Option<Gitignore>>,
}

impl IgnoreFiles {
    /// Forget what `dir` said (one of its ignore files changed).
    pub(crate) fn invalidate(&mut self, dir: &Path) {
        self.dirs.remove(dir);
    }

    /// Whether the ignore files of the directories from `path`'s parent up to `top` ignore
    /// it; the deepest file that has an opinion decides, `.ignore` over `.gitignore`.
    fn is_ignored(&mut self, path: &Path, is_dir: bool, top: &Path) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        for dir in parent.ancestors() {
            if !dir.starts_with(top) {
                break;
            }
            if let Some(matcher) = self.matcher(dir) {
                let relative = path.strip_prefix(dir).unwrap_or(path);
                match matcher.matched_path_or_any_parents(relative, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
        }
        false
    }

    fn matcher(&mut self, dir: &Path) -> Option<&Gitignore> {
        self.dirs
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                let mut builder = GitignoreBuilder::new(dir);
                let mut any = false;
                // Later files win: `.ignore` overrides `.gitignore`.
                for name in [".gitignore", ".ignore"] {
                    let file = dir.join(name);
                    if file.is_file() {
                        any = true;
                        // A partly unreadable file still contributes its good lines.
                        let _ = builder.add(file);
                    }
                }
                if any {
                    builder.build().ok().filter(|g| !g.is_empty())
                } else {
                    None
                }
            })
            .as_ref()
    }
}

/// An ignore file whose change means re-reading it.
pub(crate) fn is_ignore_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(OsStr::to_str),
        Some(".gitignore" | ".ignore")
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{WatchAction, WatchPath};

    fn spec(paths: &[(&str, Option<&str>)], ignore: &[&str]) -> WatchSpec {
        WatchSpec {
            paths: paths
                .iter()
                .map(|(p, g)| WatchPath {
                    path: PathBuf::from(p),
                    glob: g.map(str::to_owned),
                })
                .collect(),
            ignore: ignore.iter().map(|s| (*s).to_owned()).collect(),
            debounce: Duration::from_millis(100),
            action: WatchAction::Restart,
            restart_dependents: false,
        }
    }

    fn change(f: &ServiceFilter, path: &str) -> bool {
        f.is_change(Path::new(path), false, &mut IgnoreFiles::default())
    }

    #[test]
    fn builtin_ignores_cover_vcs_editor_files_and_pk_state() {
        let f = ServiceFilter::new(
            &spec(&[("/p/src", None)], &[]),
            Path::new("/p"),
            &[PathBuf::from("/p/src/logs/api.log")],
        );
        assert!(change(&f, "/p/src/main.rs"));
        assert!(!change(&f, "/p/src/logs/api.log"), "pk's own log file");
        assert!(!change(&f, "/p/src/logs/api.log.2"), "and its rotations");
        assert!(change(&f, "/p/src/logs/api.log.bak"));
        for ignored in [
            "/p/src/.git/index",
            "/p/src/.main.rs.swp",
            "/p/src/main.rs~",
            "/p/src/.#main.rs",
            "/p/src/#main.rs#",
            "/p/src/4913",
            "/p/src/.pk/state.json",
            "/p/src/a/.hg/x",
        ] {
            assert!(!change(&f, ignored), "{ignored} should be ignored");
        }
        assert!(!change(&f, "/p/other/main.rs"), "outside every watch path");
    }

    #[test]
    fn patterns_use_gitignore_syntax_and_a_directory_name_covers_its_contents() {
        let f = ServiceFilter::new(
            &spec(
                &[("/p", None)],
                &["*.snap", "build", "/tmp/**", "!keep.snap"],
            ),
            Path::new("/p"),
            &[],
        );
        assert!(!change(&f, "/p/src/x.snap"));
        assert!(
            change(&f, "/p/src/keep.snap"),
            "a later `!` pattern re-includes"
        );
        assert!(
            !change(&f, "/p/build/out/deep/a.o"),
            "below an ignored directory"
        );
        assert!(
            !change(&f, "/p/src/build/a.o"),
            "a bare name matches at any depth"
        );
        assert!(!change(&f, "/p/tmp/a"));
        assert!(
            change(&f, "/p/src/tmp/a"),
            "a leading `/` anchors at the config dir"
        );
        assert!(!f.wants_dir(Path::new("/p/build"), &mut IgnoreFiles::default()));
        assert!(f.wants_dir(Path::new("/p/src"), &mut IgnoreFiles::default()));
    }

    #[test]
    fn a_file_path_matches_only_that_file() {
        let f = ServiceFilter::new(&spec(&[("/p/Cargo.toml", None)], &[]), Path::new("/p"), &[]);
        assert!(change(&f, "/p/Cargo.toml"));
        assert!(!change(&f, "/p/Cargo.lock"));
        assert!(!change(&f, "/p/Cargo.toml.bak"), "paths match by component");
    }

    #[test]
    fn globs_select_files_below_their_directory() {
        let f = ServiceFilter::new(
            &spec(&[("/p/src", Some("/p/src/**/*.rs"))], &[]),
            Path::new("/p"),
            &[],
        );
        assert!(change(&f, "/p/src/main.rs"));
        assert!(change(&f, "/p/src/a/b/lib.rs"));
        assert!(!change(&f, "/p/src/notes.md"));
        assert!(f.wants_dir(Path::new("/p/src/a"), &mut IgnoreFiles::default()));
    }

    #[test]
    fn gitignore_and_ignore_files_apply_deepest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/gen")).unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\nnode_modules/\n").unwrap();
        std::fs::write(root.join("src/.ignore"), "!important.log\n").unwrap();
        std::fs::write(root.join("src/gen/.gitignore"), "*\n").unwrap();
        let f = ServiceFilter::new(&spec(&[(root.to_str().unwrap(), None)], &[]), root, &[]);
        let mut files = IgnoreFiles::default();
        let mut change = |p: &str, is_dir| f.is_change(&root.join(p), is_dir, &mut files);
        assert!(!change("app.log", false));
        assert!(!change("src/app.log", false));
        assert!(
            change("src/important.log", false),
            "a deeper .ignore re-includes"
        );
        assert!(!change("node_modules", true));
        assert!(!change("web/node_modules/x/index.js", false));
        assert!(!change("src/gen/out.rs", false));
        assert!(change("src/main.rs", false));
    }
}

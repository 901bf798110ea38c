//! A service's log file: appended to as output arrives, rotated by size.
//!
//! Invariant: a write error disables the file (reported once) instead of failing the service.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Rotate when a file would grow past this.
pub(crate) const MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Old files kept: `api.log.1` (newest) … `api.log.3`.
pub(crate) const KEEP: usize = 3;

pub(crate) struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: usize,
}

impl RotatingFile {
    pub(crate) fn new(path: PathBuf) -> RotatingFile {
        RotatingFile::with_limits(path, MAX_SIZE, KEEP)
    }

    pub(crate) fn with_limits(path: PathBuf, max_size: u64, keep: usize) -> RotatingFile {
        RotatingFile {
            path,
            file: None,
            size: 0,
            max_size,
            keep,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `data` (whole lines), rotating first if it would not fit.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        if self.size > 0 && self.size + data.len() as u64 > self.max_size {
            self.rotate()?;
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// `log` → `log.1` → … → `log.<keep>` (the oldest is dropped), then a fresh `log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: usize| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..self.keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, numbered(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.open()
    }
}

#[cfg(test)]
mod tests {
    use super::RotatingFile;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/api.log");
        let mut f = RotatingFile::with_limits(path.clone(), 10, 2);
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            f.write(line.as_bytes()).unwrap();
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&dir.path().join("logs/api.log.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.path().join("logs/api.log.2")), "cccc\ndddd\n");
        assert!(!dir.path().join("logs/api.log.3").exists(), "only 2 kept");
    }

    #[test]
    fn appends_to_an_existing_file_counting_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        std::fs::write(&path, "12345678\n").unwrap();
        let mut f = RotatingFile::with_limits(path.clone(), 10, 1);
        f.write(b"next\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "next\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("api.log.1")).unwrap(),
            "12345678\n"
        );
    }
}

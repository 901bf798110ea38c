//! Reading the text pk parses (pk.yaml, env files) from disk, safely: only regular files, at
//! most `MAX_SOURCE` bytes, UTF-8 with the first invalid byte located.
//!
//! Invariants: a FIFO, device or directory is refused without blocking (the open is
//! non-blocking, the type is checked on the open descriptor); a file that grows while being
//! read is still cut at `MAX_SOURCE + 1` bytes, so `/dev/zero`-like inputs cannot exhaust memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::diag::{Diag, Span};

/// The largest config or env file read (8 MiB): far above any real one.
pub(crate) const MAX_SOURCE: usize = 8 * 1024 * 1024;

/// Why a source could not be read.
#[derive(Debug)]
pub(crate) enum SourceError {
    Io(std::io::Error),
    /// Not a regular file (a FIFO, device, directory, socket).
    NotRegular(&'static str),
    TooLarge,
    /// Not UTF-8: the text with invalid bytes replaced, and where the first one is.
    NotUtf8 {
        lossy: String,
        offset: usize,
        line: usize,
        column: usize,
    },
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                f.write_str("no such file")
            }
            SourceError::Io(e) => write!(f, "{e}"),
            SourceError::NotRegular(kind) => write!(f, "it is a {kind}, not a regular file"),
            SourceError::TooLarge => write!(f, "it is larger than {} MiB", MAX_SOURCE >> 20),
            SourceError::NotUtf8 { line, column, .. } => {
                write!(f, "invalid UTF-8 at line {line}, column {column}")
            }
        }
    }
}

impl SourceError {
    /// A diagnostic for `shown` (the file's name as the user knows it), pointing at the first
    /// invalid byte when the text is not UTF-8; the source to render it against, if any.
    pub(crate) fn diag(&self, shown: &str) -> (Diag, Option<String>) {
        match self {
            SourceError::NotUtf8 { lossy, offset, .. } => {
                let len = '\u{fffd}'.len_utf8();
                (
                    Diag::error(format!("cannot read {shown}: {self}"))
                        .label(Span::new(*offset, len), "this byte is not UTF-8")
                        .help("pk reads UTF-8 text; re-encode the file (e.g. `iconv -t UTF-8`)"),
                    Some(lossy.clone()),
                )
            }
            SourceError::Io(_) => (
                Diag::error(format!("cannot read {shown}: {self}"))
                    .help("check that the file exists and is readable"),
                None,
            ),
            SourceError::NotRegular(_) | SourceError::TooLarge => (
                Diag::error(format!("cannot read {shown}: {self}"))
                    .help("pk reads regular files of at most 8 MiB"),
                None,
            ),
        }
    }
}

/// The bytes of the regular file at `path`, at most `MAX_SOURCE` of them.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, SourceError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(SourceError::Io)?;
    let kind = file.metadata().map_err(SourceError::Io)?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "device"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(SourceError::NotRegular(what));
    }
    let mut bytes = Vec::new();
    file.take(u64::try_from(MAX_SOURCE).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut bytes)
        .map_err(SourceError::Io)?;
    if bytes.len() > MAX_SOURCE {
        return Err(SourceError::TooLarge);
    }
    Ok(bytes)
}

/// The text of the regular file at `path` (see `read_bytes`), which must be UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, SourceError> {
    text(read_bytes(path)?)
}

/// `bytes` as UTF-8, or where it is not.
pub(crate) fn text(bytes: Vec<u8>) -> Result<String, SourceError> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let before = &bytes[..offset];
        let line = before.split(|&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Characters before the bad byte on its line (the valid prefix is UTF-8).
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        SourceError::NotUtf8 {
            lossy: String::from_utf8_lossy(&bytes).into_owned(),
            offset,
            line,
            column,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_invalid_byte_is_located() {
        let Err(SourceError::NotUtf8 {
            offset,
            line,
            column,
            lossy,
        }) = text(b"a: 1\nb: \"\xc3\xa9\xff\"\n".to_vec())
        else {
            panic!("not UTF-8");
        };
        assert_eq!((offset, line, column), (11, 2, 6));
        assert_eq!(&lossy[offset..offset + 3], "\u{fffd}");
    }
}

//! Memory pk gives back once it is at rest: the pages of its own program that start-up touched
//! (argument parsing, the config reader, the plan, the runtime) and never touches again, and
//! the heap malloc keeps free. Most of pk's PSS at rest is such program pages: the kernel maps
//! up to 64 KiB around every fault in a file (fault-around). docs/decisions/0009-memory-at-rest.md.
//!
//! Invariants:
//! - Only non-writable `PT_LOAD` segments of pk's own program (code, read-only data) are
//!   dropped, each rounded inward to whole pages; never a page of a writable segment or of
//!   `PT_GNU_RELRO` (relocated data lives there: dropping it would bring back the file's
//!   unrelocated bytes), and nothing at all from a program with text relocations.
//! - Dropping is `madvise(MADV_DONTNEED)` on a private file mapping whose pages pk never
//!   wrote: they stay in the page cache, and code that runs again faults them back in (a minor
//!   fault, no I/O). Nothing pk computes changes.
//! - [`rest_after_bursts`] gives back at most once per burst of changes, [`QUIET`] after the
//!   last one.
//! - Linux with glibc only (`dl_iterate_phdr`, `malloc_trim`); elsewhere [`give_back`] does
//!   nothing.

use std::time::Duration;

use tokio::sync::watch;

/// How long a burst of changes (a stack starting, a restart wave) must have been over before
/// pk gives back its start-up pages: longer than the spawn pool threads' idle exit (200 ms),
/// so that the spawning is over too.
pub(crate) const QUIET: Duration = Duration::from_millis(250);

/// What [`give_back`] advised the kernel to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given {
    /// Bytes of pk's program (code and read-only data) whose pages were dropped, resident or not.
    pub program: usize,
}

/// Waits for each burst of `changes` (snapshots of the stack) to end, then gives back pk's
/// start-up pages, once per burst. Ends when the sender is gone.
pub(crate) async fn rest_after_bursts<T>(changes: watch::Receiver<T>) {
    after_each_burst(changes, QUIET, || {
        give_back();
    })
    .await;
}

/// Runs `action` once after each burst of changes on `changes`: when `quiet` has passed with
/// no further change.
async fn after_each_burst<T>(
    mut changes: watch::Receiver<T>,
    quiet: Duration,
    mut action: impl FnMut(),
) {
    while changes.changed().await.is_ok() {
        loop {
            match tokio::time::timeout(quiet, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => break,
            }
        }
        action();
    }
}

/// Drops the resident pages of pk's own code and read-only data, and gives the free heap back
/// to the kernel. Safe to call at any time: the pages come back on use. Public for
/// `tests/memory_at_rest.rs`, which checks it in a process of its own.
pub fn give_back() -> Given {
    #[cfg(all(native_linux, target_env = "gnu"))]
    {
        let program = elf::drop_program_pages();
        // SAFETY: malloc_trim only returns free memory of malloc's arenas to the kernel.
        unsafe { libc::malloc_trim(0) };
        Given { program }
    }
    #[cfg(not(all(native_linux, target_env = "gnu")))]
    Given::default()
}

/// The program's segments, read from its program headers in memory (`dl_iterate_phdr`).
#[cfg(all(native_linux, target_env = "gnu"))]
mod elf {
    use std::ffi::{c_int, c_void};
    use std::ops::Range;

    const DT_NULL: usize = 0;
    const DT_TEXTREL: usize = 22;
    const DT_FLAGS: usize = 30;
    const DF_TEXTREL: usize = 0x4;

    /// What the walk over loaded objects found for the object that holds `here`.
    struct Program {
        /// An address in pk's code: the object whose segment holds it is pk's program.
        here: usize,
        found: bool,
        /// Non-writable `PT_LOAD` segments.
        read_only: Vec<Range<usize>>,
        /// Writable `PT_LOAD` segments and `PT_GNU_RELRO`: never dropped, not even a page.
        written: Vec<Range<usize>>,
        textrel: bool,
    }

    /// Drops the pages of the program's non-writable segments; the bytes advised.
    pub(super) fn drop_program_pages() -> usize {
        let mut program = Program {
            here: drop_program_pages as fn() -> usize as usize,
            found: false,
            read_only: Vec::new(),
            written: Vec::new(),
            textrel: false,
        };
        // SAFETY: `visit` only reads the headers it is given and writes `program`, which
        // outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut program).cast()) };
        if !program.found || program.textrel {
            return 0;
        }
        let page = rustix::param::page_size();
        let mut advised = 0;
        for range in inward_pages(&program.read_only, &program.written, page) {
            // SAFETY: the range lies inside a read-only segment of the program, whose pages
            // are unmodified file pages (no text relocations): dropping them only makes the
            // next access fault them back in from the page cache.
            let done = unsafe {
                libc::madvise(range.start as *mut c_void, range.len(), libc::MADV_DONTNEED)
            };
            if done == 0 {
                advised += range.len();
            }
        }
        advised
    }

    /// Each of `read_only` shrunk to the whole pages inside it, minus any page that overlaps
    /// `written`.
    fn inward_pages(
        read_only: &[Range<usize>],
        written: &[Range<usize>],
        page: usize,
    ) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        for segment in read_only {
            let start = segment.start.next_multiple_of(page);
            let end = segment.end - segment.end % page;
            let mut at = start;
            while at < end {
                // Cut around any written range in this segment's pages (never expected).
                let next_written = written
                    .iter()
                    .filter(|w| w.end > at && w.start < end)
                    .min_by_key(|w| w.start);
                if let Some(w) = next_written {
                    let cut = w.start - w.start % page;
                    if cut > at {
                        out.push(at..cut);
                    }
                    at = w.end.next_multiple_of(page).max(at + page);
                } else {
                    out.push(at..end);
                    at = end;
                }
            }
        }
        out
    }

    /// `dl_iterate_phdr`'s callback: fills the `Program` behind `data` from the object that
    /// holds its `here`, and stops the walk there.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and the
        // `Program` that `drop_program_pages` handed it.
        let (info, program) = unsafe { (&*info, &mut *data.cast::<Program>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of a loaded object.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        #[expect(clippy::cast_possible_truncation, reason = "addresses fit a usize")]
        let base = info.dlpi_addr as usize;
        #[expect(clippy::cast_possible_truncation, reason = "addresses fit a usize")]
        let range = |vaddr: u64, size: u64| {
            let start = base.wrapping_add(vaddr as usize);
            start..start.wrapping_add(size as usize)
        };
        let holds_here = headers.iter().any(|h| {
            h.p_type == libc::PT_LOAD && range(h.p_vaddr, h.p_memsz).contains(&program.here)
        });
        if !holds_here {
            return 0;
        }
        program.found = true;
        for h in headers {
            let segment = range(h.p_vaddr, h.p_memsz);
            match h.p_type {
                libc::PT_LOAD if h.p_flags & libc::PF_W == 0 => program.read_only.push(segment),
                libc::PT_LOAD | libc::PT_GNU_RELRO => program.written.push(segment),
                libc::PT_DYNAMIC => {
                    // SAFETY: the dynamic section of a loaded object is mapped and readable,
                    // an array of (tag, value) words ending with DT_NULL.
                    program.textrel |= unsafe { has_textrel(segment.start as *const [usize; 2]) };
                }
                _ => {}
            }
        }
        1
    }

    /// Whether the dynamic section at `dynamic` asks for text relocations.
    ///
    /// # Safety
    /// `dynamic` points to a loaded object's dynamic section.
    unsafe fn has_textrel(mut dynamic: *const [usize; 2]) -> bool {
        loop {
            // SAFETY: the caller's promise; the walk stops at DT_NULL.
            let [tag, value] = unsafe { dynamic.read() };
            match tag {
                DT_NULL => return false,
                DT_TEXTREL => return true,
                DT_FLAGS if value & DF_TEXTREL != 0 => return true,
                _ => {}
            }
            // SAFETY: not past DT_NULL yet.
            dynamic = unsafe { dynamic.add(1) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{DF_TEXTREL, DT_FLAGS, DT_NULL, DT_TEXTREL, has_textrel, inward_pages};

        #[test]
        fn text_relocations_are_seen_in_either_form() {
            const DT_NEEDED: usize = 1;
            const DF_BIND_NOW: usize = 0x8;
            let asks = |dynamic: &[[usize; 2]]| {
                // SAFETY: each array below ends with DT_NULL.
                unsafe { has_textrel(dynamic.as_ptr()) }
            };
            assert!(!asks(&[
                [DT_NEEDED, 7],
                [DT_FLAGS, DF_BIND_NOW],
                [DT_NULL, 0]
            ]));
            assert!(asks(&[[DT_NEEDED, 7], [DT_TEXTREL, 0], [DT_NULL, 0]]));
            assert!(asks(&[[DT_FLAGS, DF_BIND_NOW | DF_TEXTREL], [DT_NULL, 0]]));
            // Nothing after DT_NULL is read.
            assert!(!asks(&[[DT_NULL, 0], [DT_TEXTREL, 0]]));
        }

        #[test]
        #[expect(
            clippy::unreadable_literal,
            clippy::single_range_in_vec_init,
            reason = "addresses as readelf prints them; lists of ranges"
        )]
        fn segments_shrink_to_whole_pages_and_never_reach_a_written_page() {
            let page = 0x1000;
            // A read-only segment ending mid-page, code starting mid-page, then RELRO.
            let read_only = [0..0x19be54, 0x19ce60..0x75ea40];
            let written = [0x75fa40..0x797000];
            assert_eq!(
                inward_pages(&read_only, &written, page),
                vec![0..0x19b000, 0x19d000..0x75e000]
            );
            // A written range inside a read-only one (never seen in practice) is cut out with
            // every page it touches.
            assert_eq!(
                inward_pages(&[0..0x10000], &[0x3800..0x4100], page),
                vec![0..0x3000, 0x5000..0x10000]
            );
            assert!(inward_pages(&[0x100..0xf00], &[], page).is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gives_back_once_after_each_burst_once_it_has_been_quiet() {
        let (tx, rx) = watch::channel(0);
        let given = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&given);
        let task = tokio::spawn(after_each_burst(rx, QUIET, move || {
            count.fetch_add(1, Ordering::SeqCst);
        }));
        let step = QUIET / 3;
        for i in 1..=5 {
            tx.send(i).unwrap();
            tokio::time::sleep(step).await;
        }
        assert_eq!(
            given.load(Ordering::SeqCst),
            0,
            "not while the burst goes on"
        );
        tokio::time::sleep(QUIET).await;
        assert_eq!(given.load(Ordering::SeqCst), 1, "once the burst is over");
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(given.load(Ordering::SeqCst), 1, "once per burst");
        tx.send(6).unwrap();
        tokio::time::sleep(QUIET + step).await;
        assert_eq!(
            given.load(Ordering::SeqCst),
            2,
            "again after the next burst"
        );
        drop(tx);
        task.await.unwrap();
    }
}

//! `pk::memory::give_back` in a process of its own: it drops the resident pages of the
//! program's code, code runs on afterwards, and relocated read-only data (`PT_GNU_RELRO`) is
//! untouched. Its own test binary with one test, so that no test running beside it faults the
//! code back in between the two readings of `/proc/self/smaps`.
//!
//! Linux with glibc only, like `give_back` itself.
#![cfg(all(native_linux, target_env = "gnu"))]

use pk::memory::{Given, give_back};

/// Read-only data that holds pointers: relocated at load (`PT_GNU_RELRO`, a writable segment),
/// so its pages must never be dropped (dropping them brings back the file's unrelocated bytes,
/// and reading these then crashes).
static WORDS: [&str; 3] = ["relocated", "pointers", "intact"];
static DOUBLE: fn(u64) -> u64 = |n| n * 2;

/// The `/proc/self/smaps` mapping that holds `address`: its range and `Rss` in KiB.
fn mapping_of(address: usize) -> (std::ops::Range<usize>, u64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut current = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            current = Some(start..end);
        } else if let Some(kib) = line.strip_prefix("Rss:")
            && let Some(range) = current.as_ref().filter(|r| r.contains(&address))
        {
            let kib = kib.trim().trim_end_matches("kB").trim().parse().unwrap();
            return (range.clone(), kib);
        }
    }
    panic!("no mapping holds {address:#x}");
}

#[test]
fn giving_back_drops_the_code_pages_and_code_and_relocated_data_still_work() {
    let code = give_back as fn() -> Given as usize;
    let (text, _) = mapping_of(code);
    // Every page of the code resident first (a read of each), so that what is dropped is far
    // more than the pages this test touches afterwards.
    for page in text.clone().step_by(rustix::param::page_size()) {
        // SAFETY: a readable mapping of the test binary's code, read as bytes.
        unsafe { std::ptr::read_volatile(page as *const u8) };
    }
    let (_, before) = mapping_of(code);
    let given = give_back();
    let (_, after) = mapping_of(code);
    assert!(
        given.program >= text.len() / 2,
        "the code segment was advised ({given:?}, mapping of {} KiB); a binary with text \
         relocations would give nothing",
        text.len() / 1024
    );
    assert!(
        after < before / 2,
        "the code mapping kept its pages: Rss {before} KiB before, {after} KiB after"
    );
    // Code runs on: a regex compiled and matched, a sort, formatting.
    let re = regex::Regex::new(r"^(\w+)-(\d+)$").unwrap();
    let mut found: Vec<u64> = ["b-20", "a-3", "c-100"]
        .iter()
        .filter_map(|s| re.captures(s)?.get(2)?.as_str().parse().ok())
        .collect();
    found.sort_unstable();
    assert_eq!(format!("{found:?}"), "[3, 20, 100]");
    // Relocated data reads as it was.
    let words = std::hint::black_box(&WORDS);
    assert_eq!(words.concat(), "relocatedpointersintact");
    assert_eq!(std::hint::black_box(&DOUBLE)(21), 42);
}

//! `LineDecoder`: arbitrary bytes, split into chunks the fuzzer chooses.
//!
//! Checks that
//! - the decoded sequence does not depend on how the input is chunked, and equals a plain
//!   reference model (Telnet filtering, split at LF, one trailing CR stripped, over-long lines
//!   reported as `TooLong`);
//! - no decoded line is longer than the limit or holds a LF;
//! - `has_buffered` tells the truth about a pending partial line;
//! - the heap the decoder holds stays bounded by the line limit (plus the queue of lines not yet
//!   taken), however long the input: measured with a counting global allocator.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::Arbitrary;
use ftpgate_proto::line::{Decoded, LineDecoder};
use libfuzzer_sys::fuzz_target;

/// Counts the bytes currently allocated through Rust's allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Arbitrary)]
struct Input {
    /// The configured limit (0 is allowed: the decoder raises it to 1).
    max_line: u8,
    /// Chunk lengths, each taken modulo what is left (+1, so empty feeds happen too).
    cuts: Vec<u16>,
    data: Vec<u8>,
}

const IAC: u8 = 255;

/// The decoder's documented behaviour, written the obvious (unbounded) way.
/// Returns the decoded lines and whether a partial line is left over.
fn reference(max_line: usize, data: &[u8]) -> (Vec<Decoded>, bool) {
    #[derive(PartialEq)]
    enum T {
        Data,
        Iac,
        Option,
    }
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut t = T::Data;
    for &b in data {
        // A byte after IAC that is not a Telnet command is plain data.
        let stray = t == T::Iac && b < 240;
        if stray {
            t = T::Data;
        }
        match t {
            T::Iac => {
                t = T::Data;
                match b {
                    IAC => cur.push(IAC),
                    251..=254 => t = T::Option,
                    _ => {}
                }
            }
            T::Option => t = T::Data,
            T::Data => match b {
                IAC => t = T::Iac,
                b'\n' => {
                    let mut line = std::mem::take(&mut cur);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    out.push(if line.len() > max_line {
                        Decoded::TooLong
                    } else {
                        Decoded::Line(line)
                    });
                }
                _ => cur.push(b),
            },
        }
    }
    (out, !cur.is_empty())
}

fn check_line(d: &Decoded, max_line: usize) {
    if let Decoded::Line(line) = d {
        assert!(
            line.len() <= max_line,
            "line of {} > {max_line}",
            line.len()
        );
        assert!(!line.contains(&b'\n'));
    }
}

fuzz_target!(|input: Input| {
    let configured = usize::from(input.max_line);
    let max_line = configured.max(1);
    let data = &input.data;

    // Everything at once.
    let mut whole = LineDecoder::new(configured);
    whole.feed(data);
    let expected: Vec<Decoded> = std::iter::from_fn(|| whole.next_line()).collect();
    for d in &expected {
        check_line(d, max_line);
    }
    let (model, model_tail) = reference(max_line, data);
    assert_eq!(expected, model, "decoder differs from the reference model");
    assert_eq!(whole.has_buffered(), model_tail);
    whole.clear();
    assert!(!whole.has_buffered());
    assert_eq!(whole.next_line(), None);
    drop(whole);

    // Chunk by chunk, taking lines after each chunk and measuring the heap the decoder holds.
    let deque_slot = std::mem::size_of::<Decoded>();
    let base = LIVE.load(Ordering::Relaxed);
    let mut decoder = LineDecoder::new(configured);
    let mut index = 0usize;
    let mut rest: &[u8] = data;
    let mut cuts = input.cuts.iter();
    let mut most_lines_in_a_chunk = 0usize;
    loop {
        let len = match cuts.next() {
            Some(&c) => usize::from(c) % (rest.len() + 1),
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        decoder.feed(chunk);
        let newlines = chunk.iter().filter(|&&b| b == b'\n').count();
        most_lines_in_a_chunk = most_lines_in_a_chunk.max(newlines);
        while let Some(d) = decoder.next_line() {
            check_line(&d, max_line);
            assert!(
                index < expected.len(),
                "chunked feeding produced extra lines"
            );
            assert_eq!(d, expected[index], "chunking changed result {index}");
            index += 1;
        }
        // What is left: at most one partial line (limit + a CR, in a Vec that at most doubled)
        // and the emptied queue, which may keep its capacity.
        let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
        let bound = 2 * (max_line + 2) + 16 + deque_slot * (2 * most_lines_in_a_chunk + 8);
        assert!(
            held <= bound,
            "decoder holds {held} bytes (bound {bound}, limit {max_line})"
        );
        if rest.is_empty() && cuts.len() == 0 {
            break;
        }
        if rest.is_empty() {
            // Keep feeding empty chunks for the cuts that are left: they must change nothing.
            for _ in cuts.by_ref() {
                decoder.feed(&[]);
                assert_eq!(decoder.next_line(), None);
            }
            break;
        }
    }
    assert_eq!(index, expected.len(), "chunked feeding lost lines");
    assert_eq!(decoder.has_buffered(), model_tail);
});

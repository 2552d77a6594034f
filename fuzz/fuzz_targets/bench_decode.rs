//! Arbitrary bytes as the benchmark's result buffer, which the guest
//! fills: decoded, re-encoded and summarised, checked.
//!
//! The decoder and the checks live in the VMM's library
//! (`uirq_host::fuzzing::bench_decode`), so that `cargo test` replays this
//! target's corpus with exactly the same code. What only a whole process
//! can check is here: no single allocation of a run is larger than the
//! buffer the input describes (a guest-chosen count used as a length
//! would show up as one).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use uirq_host::fuzzing::bench_decode;

/// The system allocator, remembering the largest block asked for.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is an atomic maximum.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from
        // `System`; the caller's guarantees are passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fuzz_target!(|data: &[u8]| {
    LARGEST.store(0, Ordering::Relaxed);
    bench_decode::run(data);
    let largest = LARGEST.load(Ordering::Relaxed);
    let bound = bench_decode::MAX_BUFFER.max(data.len());
    assert!(
        largest <= bound,
        "an allocation of {largest} bytes for an input describing at most {bound}"
    );
});

//! A global allocator for test binaries that count heap use: live bytes,
//! for memory per binding, and allocations, for allocations per request.
//! Counted per thread, in a thread-local cell: the sans-IO measurements
//! run on one thread, and the socket runs' registrar threads must not pay
//! an atomic add per allocation, which the daemon does not (~0.35 µs a
//! binding: BENCHMARKS "The bench's own allocation counter").
//!
//! A test binary opts in with
//! `#[global_allocator] static ALLOC: pmip_tests::heap::Counting = pmip_tests::heap::Counting;`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting what each thread allocates and frees.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator and only adds bookkeeping (a
// thread-local `Cell` with a const initialiser: no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        LIVE.with(|c| c.set(c.get() + l.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.with(|c| c.set(c.get() - l.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    /// The system's realloc, as the daemon gets it: the trait's default
    /// (alloc, copy, free) would copy every growing vector that glibc
    /// grows in place, a cost pmipd does not pay.
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        LIVE.with(|c| c.set(c.get() + new_size as isize - l.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new_size) }
    }
}

/// Live heap bytes allocated (less those freed) by this thread.
pub fn live_bytes() -> usize {
    LIVE.with(|c| c.get()) as usize
}

/// Heap allocations (and reallocations) made by this thread so far.
pub fn allocations() -> u64 {
    ALLOCS.with(|c| c.get())
}

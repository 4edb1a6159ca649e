//! The system allocator through `malloc`, `calloc`, `realloc` and `free` alone.
//!
//! Rust's `System` asks `posix_memalign` for blocks aligned beyond 16 bytes (the channels of
//! the watcher's threads are aligned to a cache line) or smaller than their alignment. A C
//! host may replace the C allocator, and hooks often get the rarely used functions wrong:
//! skynet's jemalloc hook (1.8.0 and master) fills its bookkeeping prefix in a block from
//! `posix_memalign` but hands back the block's start, so the caller overwrites the prefix and
//! `free` later reads garbage (heap corruption in watching services). Blocks aligned beyond
//! [`MALLOC_ALIGN`] are therefore carved out of a larger `malloc` block, with the start of that
//! block kept in the word just before the aligned one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// What `malloc` guarantees on the 64-bit platforms hotlua runs on (and `System` assumes).
const MALLOC_ALIGN: usize = 16;

/// Where `System` calls `malloc` itself: an alignment it guarantees, a size at least that.
fn plain(layout: Layout) -> Option<Layout> {
    (layout.align() <= MALLOC_ALIGN)
        .then(|| Layout::from_size_align(layout.size().max(layout.align()), layout.align()).ok())
        .flatten()
}

/// The `malloc` block that holds an over-aligned block of `layout`: room for any offset.
fn carrier(layout: Layout) -> Option<Layout> {
    let size = layout.size().checked_add(layout.align())?;
    Layout::from_size_align(size, MALLOC_ALIGN).ok()
}

/// SAFETY (all functions): the `GlobalAlloc` contract; blocks come back with the layout they
/// were allocated with, from these functions only.
pub(super) unsafe fn alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    let allocate = |layout| match zeroed {
        true => System.alloc_zeroed(layout),
        false => System.alloc(layout),
    };
    if let Some(plain) = plain(layout) {
        return allocate(plain);
    }
    let Some(carrier) = carrier(layout) else {
        return ptr::null_mut();
    };
    let start = allocate(carrier);
    if start.is_null() {
        return start;
    }
    // `start` is 16-aligned and the alignment a larger power of two: the next aligned address
    // is 16 to `align` bytes in, room for the word that keeps `start`.
    let offset = layout.align() - (start as usize % layout.align());
    let block = start.add(offset);
    block.cast::<*mut u8>().sub(1).write_unaligned(start);
    block
}

pub(super) unsafe fn dealloc(block: *mut u8, layout: Layout) {
    if let Some(plain) = plain(layout) {
        return System.dealloc(block, plain);
    }
    let start = block.cast::<*mut u8>().sub(1).read_unaligned();
    System.dealloc(start, carrier(layout).expect("allocated with it"));
}

pub(super) unsafe fn realloc(block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
    if let Some(plain) = plain(layout) {
        return System.realloc(block, plain, size.max(layout.align()));
    }
    // Over-aligned: a new block, the bytes copied, the old one freed.
    let Ok(grown) = Layout::from_size_align(size, layout.align()) else {
        return ptr::null_mut();
    };
    let moved = alloc(grown, false);
    if !moved.is_null() {
        ptr::copy_nonoverlapping(block, moved, layout.size().min(size));
        dealloc(block, layout);
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment up to a page, sizes below and above it: blocks are aligned, hold their
    /// bytes through a realloc, and go back without a complaint from the allocator.
    #[test]
    fn blocks_of_every_alignment_hold_their_bytes() {
        for align in (0..13).map(|shift| 1usize << shift) {
            for size in [1, 3, align.saturating_sub(1).max(1), align, 3 * align + 5] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let block = alloc(layout, size % 2 == 0);
                    assert_eq!(block as usize % align, 0, "{layout:?}");
                    ptr::write_bytes(block, 0xa5, size);
                    let grown = realloc(block, layout, 2 * size + 40);
                    assert_eq!(grown as usize % align, 0, "{layout:?} grown");
                    assert!((0..size).all(|i| *grown.add(i) == 0xa5), "{layout:?}");
                    dealloc(
                        grown,
                        Layout::from_size_align(2 * size + 40, align).unwrap(),
                    );
                }
            }
        }
    }
}

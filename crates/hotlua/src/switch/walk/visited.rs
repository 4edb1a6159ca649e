//! The set of objects a walk has already visited.

use std::collections::TryReserveError;

use rustc_hash::FxHashMap;

/// The set of objects already walked, as a bitmap over the address space, one bit per 8 bytes,
/// in 1 MiB pages allocated on first use.
///
/// Lua objects are at least 8-byte aligned and live in a few dense regions of the heap, so this
/// costs about 1/64 of the heap's address span (some 2 % of the live heap), where a hash set of
/// a million pointers would take 16 MiB plus a resize spike, and a bit test is cheaper than a
/// hash probe. The last page used is cached: consecutive objects are usually neighbours.
///
/// Pages are allocated fallibly: a heap that fills the memory fails the walk with an error
/// instead of aborting the program.
#[derive(Default)]
pub(super) struct Visited {
    pages: FxHashMap<usize, Box<[u64]>>,
    last: Option<(usize, *mut u64)>,
}

const PAGE_SHIFT: u32 = 20;
const PAGE_WORDS: usize = (1 << PAGE_SHIFT) / 8 / 64;

impl Visited {
    /// Marks `address`; returns true if it was not marked before.
    pub(super) fn insert(&mut self, address: usize) -> Result<bool, TryReserveError> {
        let (page, word, bit) = split(address);
        let bits = match self.page(page) {
            Some(bits) => bits,
            None => self.add_page(page)?,
        };
        // SAFETY: see `page`; `word < PAGE_WORDS`.
        let word = unsafe { &mut *bits.add(word) };
        let fresh = *word & bit == 0;
        *word |= bit;
        Ok(fresh)
    }

    /// True if `address` is marked. Allocates nothing: an address on a page not allocated yet
    /// is not marked.
    pub(super) fn contains(&mut self, address: usize) -> bool {
        let (page, word, bit) = split(address);
        // SAFETY: see `page`; `word < PAGE_WORDS`.
        self.page(page)
            .is_some_and(|bits| unsafe { *bits.add(word) } & bit != 0)
    }

    /// The words of `page`, if it is allocated.
    ///
    /// The pointer is to the PAGE_WORDS words of a boxed page owned by `self.pages`: boxes
    /// never move and pages are never removed, and `&mut self` makes its use the only access.
    fn page(&mut self, page: usize) -> Option<*mut u64> {
        if let Some((cached, bits)) = self.last {
            if cached == page {
                return Some(bits);
            }
        }
        let bits = self.pages.get_mut(&page)?.as_mut_ptr();
        self.last = Some((page, bits));
        Some(bits)
    }

    fn add_page(&mut self, page: usize) -> Result<*mut u64, TryReserveError> {
        self.pages.try_reserve(1)?;
        let mut words = Vec::new();
        words.try_reserve_exact(PAGE_WORDS)?;
        words.resize(PAGE_WORDS, 0);
        let bits = self
            .pages
            .entry(page)
            .or_insert(words.into_boxed_slice())
            .as_mut_ptr();
        self.last = Some((page, bits));
        Ok(bits)
    }
}

/// The page of `address`, the index of its word in the page, and its bit in the word.
fn split(address: usize) -> (usize, usize, u64) {
    let granule = (address & ((1 << PAGE_SHIFT) - 1)) >> 3;
    (address >> PAGE_SHIFT, granule / 64, 1 << (granule % 64))
}

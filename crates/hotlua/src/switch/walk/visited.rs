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
        let (word, bit) = self.locate(address)?;
        let fresh = *word & bit == 0;
        *word |= bit;
        Ok(fresh)
    }

    pub(super) fn contains(&mut self, address: usize) -> Result<bool, TryReserveError> {
        let (word, bit) = self.locate(address)?;
        Ok(*word & bit != 0)
    }

    fn locate(&mut self, address: usize) -> Result<(&mut u64, u64), TryReserveError> {
        let page = address >> PAGE_SHIFT;
        let granule = (address & ((1 << PAGE_SHIFT) - 1)) >> 3;
        let bits = match self.last {
            Some((cached, bits)) if cached == page => bits,
            _ => {
                let bits = match self.pages.get_mut(&page) {
                    Some(bits) => bits.as_mut_ptr(),
                    None => {
                        self.pages.try_reserve(1)?;
                        let mut words = Vec::new();
                        words.try_reserve_exact(PAGE_WORDS)?;
                        words.resize(PAGE_WORDS, 0);
                        self.pages
                            .entry(page)
                            .or_insert(words.into_boxed_slice())
                            .as_mut_ptr()
                    }
                };
                self.last = Some((page, bits));
                bits
            }
        };
        // SAFETY: `bits` points to the PAGE_WORDS words of a boxed page owned by `self.pages`;
        // boxes never move and pages are never removed, `granule / 64 < PAGE_WORDS`, and
        // `&mut self` makes this the only access.
        let word = unsafe { &mut *bits.add(granule / 64) };
        Ok((word, 1 << (granule % 64)))
    }
}

//! Pairing old prototypes with new ones by their place in the parent's code, and remapping
//! their upvalues by name (steps 1 and 2 of the engine).

use std::collections::hash_map::Entry;
use std::ffi::{c_int, c_void};

use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    hotlua_child_key, hotlua_closure_cell, hotlua_prefetch_proto, hotlua_proto_child,
    hotlua_proto_line, hotlua_proto_nchildren, hotlua_proto_nupvalues, hotlua_proto_params,
    hotlua_proto_same_body, hotlua_proto_upvalue_name, hotlua_proto_upvalue_origin, Proto, RawPair,
};
use crate::fallible::{self, Grow, TryPush};

/// Where a retargeted closure's new upvalue comes from.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// Its own old upvalue of that index (same name).
    Old(c_int),
    /// A live cell: the new upvalue is a variable of a module function the planner paired
    /// (a module-level local it joined to the live one).
    Cell(*const c_void),
    /// A local of a call that already returned: cannot be known.
    Unknown,
    /// The variable of that name changed scope (a per-call local became a module-level one,
    /// or the other way round) and no live variable can be bound: the closure keeps its old
    /// code rather than run new code bound to the wrong variable.
    ScopeChanged,
}

/// Old prototype → new prototype, or `None` for an old prototype that keeps its old code.
#[derive(Default)]
pub(super) struct Pairing {
    pub(super) map: FxHashMap<usize, Option<usize>>,
    /// Old prototypes left unpaired because several new ones could be their counterpart.
    pub(super) ambiguous: FxHashSet<usize>,
    /// Per paired old prototype: where each upvalue of the new prototype comes from, as a
    /// run of `slots` (start, length): ten thousand pairs make no list each.
    remaps: FxHashMap<usize, (usize, usize)>,
    slots: Vec<Slot>,
    /// New prototype → the new prototype it is nested in (for prototypes paired as children).
    new_parent: FxHashMap<usize, usize>,
    /// Old prototype → the old prototype it is nested in (likewise).
    old_parent: FxHashMap<usize, usize>,
    /// New prototype of a planner pair → its new closure (`None`: several closures).
    seeds: FxHashMap<usize, Option<*const c_void>>,
    pub(super) warnings: Vec<String>,
}

impl Pairing {
    /// Pairs the planner's pairs' prototypes and, from them, the whole nested trees.
    ///
    /// # Safety
    /// Every prototype of `pairs` is live; children of live prototypes are live.
    pub(super) unsafe fn pair(&mut self, pairs: &[RawPair]) -> mlua::Result<()> {
        // Sized once for the planner's pairs (most have no nested functions): ten thousand
        // pairs would otherwise rehash each map a dozen times.
        self.map.grow_by(pairs.len())?;
        self.seeds.grow_by(pairs.len())?;
        self.remaps.grow_by(pairs.len())?;
        for pair in pairs {
            self.insert(pair.old_proto, pair.new_proto)?;
            self.seeds.grow()?;
            self.seeds
                .entry(pair.new_proto as usize)
                .and_modify(|closure| *closure = None)
                .or_insert(Some(pair.new_closure));
        }
        let mut queue =
            fallible::collect(pairs.iter().map(|pair| (pair.old_proto, pair.new_proto)))?;
        let mut done = FxHashSet::default();
        done.grow_by(queue.len())?;
        while let Some((old, new)) = queue.pop() {
            prefetch_ahead(&queue);
            done.grow()?;
            if self.map.get(&(old as usize)) != Some(&Some(new as usize)) || !done.insert(old) {
                continue;
            }
            for (old_child, new_child) in self.pair_children(old, new)? {
                self.old_parent.grow()?;
                self.old_parent.insert(old_child as usize, old as usize);
                match new_child {
                    Some(new_child) => {
                        self.new_parent.grow()?;
                        self.new_parent.insert(new_child as usize, new as usize);
                        self.insert(old_child, new_child)?;
                        queue.try_push((old_child, new_child))?;
                    }
                    None => self.keep_old(old_child)?,
                }
            }
            // Its parents are paired (they were before it was queued), as `scope` needs.
            self.remap_pair(old, new)?;
        }
        // A pair that a later pair made ambiguous keeps its old code.
        let map = &self.map;
        self.remaps
            .retain(|old, _| matches!(map.get(old), Some(Some(_))));
        Ok(())
    }

    /// Where each upvalue of the new prototype paired with old prototype `old` comes from in
    /// `old`'s closures, if it is paired.
    pub(super) fn remap_of(&self, old: usize) -> Option<&[Slot]> {
        let &(start, len) = self.remaps.get(&old)?;
        Some(&self.slots[start..start + len])
    }

    /// How many slots the remaps hold in all (those of pairs made ambiguous later included).
    pub(super) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// Where each upvalue of `new` comes from in the closures of `old` (see [`Slot`]).
    unsafe fn remap_pair(&mut self, old: *const Proto, new: *const Proto) -> mlua::Result<()> {
        let start = self.slots.len();
        if !remap(old, new, &mut self.slots)? {
            self.map.insert(old as usize, None);
            self.warnings.push(format!(
                "the function at line {} has no upvalue names (stripped code): it keeps its old \
                 code",
                hotlua_proto_line(old)
            ));
            return Ok(());
        }
        for at in start..self.slots.len() {
            let j = (at - start) as c_int;
            self.slots[at] = match self.slots[at] {
                Slot::Unknown => self.live_cell(new, j),
                Slot::Old(i) if self.scope(old, i, true) != self.scope(new, j, false) => {
                    match self.live_cell(new, j) {
                        Slot::Unknown => Slot::ScopeChanged,
                        cell => cell,
                    }
                }
                slot => slot,
            };
        }
        self.remaps.grow()?;
        self.remaps
            .insert(old as usize, (start, self.slots.len() - start));
        Ok(())
    }

    /// Pairs closures an earlier reload left old (`old_proto`) with the counterpart of the
    /// prototype they would have taken then (`new_proto`, an old prototype now), where that
    /// one pairs again; upvalues remap by name.
    ///
    /// # Safety
    /// Every prototype of `stale` is live.
    pub(super) unsafe fn pair_stale(&mut self, stale: &[RawPair]) -> mlua::Result<()> {
        for pair in stale {
            let (old, then) = (pair.old_proto as usize, pair.new_proto as usize);
            let target = match self.map.get(&then) {
                Some(&Some(target)) if !self.map.contains_key(&old) => target,
                _ => continue,
            };
            let target_proto = target as *const Proto;
            let start = self.slots.len();
            if !remap(old as *const Proto, target_proto, &mut self.slots)? {
                continue;
            }
            for at in start..self.slots.len() {
                if matches!(self.slots[at], Slot::Unknown) {
                    self.slots[at] = self.live_cell(target_proto, (at - start) as c_int);
                }
            }
            self.map.grow()?;
            self.map.insert(old, Some(target));
            self.remaps.grow()?;
            self.remaps.insert(old, (start, self.slots.len() - start));
        }
        Ok(())
    }

    /// The live cell upvalue `j` of new prototype `p` stands for, if it is a variable of a
    /// module function the planner paired (followed up through the enclosing functions'
    /// upvalues); `Unknown` if it is a local of an enclosing call.
    unsafe fn live_cell(&self, mut p: *const Proto, mut j: c_int) -> Slot {
        loop {
            let mut instack = 0;
            let index = hotlua_proto_upvalue_origin(p, j, &mut instack);
            if instack != 0 {
                return Slot::Unknown;
            }
            let Some(&parent) = self.new_parent.get(&(p as usize)) else {
                return Slot::Unknown;
            };
            if let Some(seed) = self.seeds.get(&parent) {
                return match seed {
                    Some(closure) => Slot::Cell(hotlua_closure_cell(*closure, index)),
                    None => Slot::Unknown,
                };
            }
            (p, j) = (parent as *const Proto, index);
        }
    }

    /// Where upvalue `j` of prototype `p` lives: how many functions up it is a local, or, when
    /// the chain leaves the prototypes the pairing knows the parents of, how many steps it
    /// took and at which upvalue index it left. Equal for an old and a new upvalue that are
    /// the same variable.
    unsafe fn scope(&self, mut p: *const Proto, mut j: c_int, old: bool) -> (usize, Option<c_int>) {
        let parents = if old {
            &self.old_parent
        } else {
            &self.new_parent
        };
        let mut steps = 1;
        loop {
            let mut instack = 0;
            let index = hotlua_proto_upvalue_origin(p, j, &mut instack);
            if instack != 0 {
                return (steps, None);
            }
            let Some(&parent) = parents.get(&(p as usize)) else {
                return (steps, Some(index));
            };
            (p, j, steps) = (parent as *const Proto, index, steps + 1);
        }
    }

    /// Records `old → new`; an old prototype that two pairs send to different new ones is
    /// ambiguous and keeps its old code.
    unsafe fn insert(&mut self, old: *const Proto, new: *const Proto) -> mlua::Result<()> {
        self.map.grow()?;
        match self.map.entry(old as usize) {
            Entry::Vacant(entry) => {
                entry.insert(Some(new as usize));
            }
            Entry::Occupied(mut entry) => {
                if *entry.get() != Some(new as usize) && entry.get().is_some() {
                    entry.insert(None);
                    self.warnings.push(format!(
                        "the function at line {} pairs with two different new functions: its \
                         closures keep their old code",
                        hotlua_proto_line(old)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Marks `p` and every prototype nested in it (not paired otherwise) as keeping old code.
    ///
    /// # Safety
    /// `p` is live.
    pub(super) unsafe fn keep_old(&mut self, p: *const Proto) -> mlua::Result<()> {
        let mut stack = vec![p];
        while let Some(p) = stack.pop() {
            if self.map.contains_key(&(p as usize)) {
                continue;
            }
            self.map.grow()?;
            self.map.insert(p as usize, None);
            for i in 0..hotlua_proto_nchildren(p) {
                stack.try_push(hotlua_proto_child(p, i))?;
            }
        }
        Ok(())
    }

    /// Pairs the children of `old` with those of `new` by their place in the parent's code.
    /// Returns every old child with its new counterpart, or `None`.
    ///
    /// Siblings made at the same place (two functions in one table constructor, two timers
    /// started with the same arguments) pair by an identical body, then by their parameter
    /// names, each only where it singles out one function on both sides. Never by their order:
    /// a new file that swaps two edited siblings would run each one's code in the other's
    /// closures. Whatever is left is ambiguous and keeps its old code.
    unsafe fn pair_children(
        &mut self,
        old: *const Proto,
        new: *const Proto,
    ) -> mlua::Result<Vec<(*const Proto, Option<*const Proto>)>> {
        type Group = (Vec<*const Proto>, Vec<*const Proto>);
        let mut groups: FxHashMap<Vec<u8>, Group> = FxHashMap::default();
        for (parent, is_new) in [(old, false), (new, true)] {
            for i in 0..hotlua_proto_nchildren(parent) {
                groups.grow()?;
                let group = groups.entry(child_key(parent, i)).or_default();
                let side = if is_new { &mut group.1 } else { &mut group.0 };
                side.try_push(hotlua_proto_child(parent, i))?;
            }
        }
        let mut result = Vec::new();
        for (key, (olds, news)) in groups {
            let mut found: Vec<Option<*const Proto>> = fallible::filled(None, olds.len())?;
            let mut taken: Vec<bool> = fallible::filled(false, news.len())?;
            let same_body = |a: *const Proto, b: *const Proto| hotlua_proto_same_body(a, b) != 0;
            let olds_params = fallible::collect(olds.iter().map(|&p| params(p)))?;
            let news_params = fallible::collect(news.iter().map(|&p| params(p)))?;
            // One to one at a place, then an identical body, then parameter names, each only
            // where it singles out one function on both sides.
            let evidence: [&dyn Fn(usize, usize) -> bool; 3] = [
                &|_, _| olds.len() == 1 && news.len() == 1,
                &|o, n| same_body(olds[o], news[n]),
                &|o, n| olds_params[o] == news_params[n],
            ];
            for matches in evidence {
                for o in 0..olds.len() {
                    if found[o].is_some() {
                        continue;
                    }
                    let free = |n: &usize| !taken[*n];
                    let mut candidates = (0..news.len()).filter(free).filter(|&n| matches(o, n));
                    let (Some(n), None) = (candidates.next(), candidates.next()) else {
                        continue;
                    };
                    let rivals = (0..olds.len()).filter(|&p| found[p].is_none() && matches(p, n));
                    if rivals.count() == 1 {
                        found[o] = Some(news[n]);
                        taken[n] = true;
                    }
                }
            }
            for (o, &old_child) in olds.iter().enumerate() {
                if found[o].is_none() && !news.is_empty() {
                    self.ambiguous.grow()?;
                    self.ambiguous.insert(old_child as usize);
                    self.warnings.push(format!(
                        "the function at line {} ({}) has no unambiguous counterpart in the \
                         new file: its closures keep their old code",
                        hotlua_proto_line(old_child),
                        String::from_utf8_lossy(&key)
                    ));
                }
                result.try_push((old_child, found[o]))?;
            }
        }
        Ok(result)
    }
}

/// Asks the cache for the prototypes of the pairs a few places down `queue` (a stack: the last
/// is paired next), so that pairing them does not wait on memory: a module's ten thousand
/// prototypes were last read by the planner, long before.
///
/// # Safety
/// Every prototype of `queue` is live.
unsafe fn prefetch_ahead(queue: &[(*const Proto, *const Proto)]) {
    for (distance, depth) in [(8, 0), (4, 1)] {
        if let Some(&(old, new)) = queue.len().checked_sub(distance).map(|at| &queue[at]) {
            hotlua_prefetch_proto(old, depth);
            hotlua_prefetch_proto(new, depth);
        }
    }
}

/// The parameter names of `p`, comma-separated (see csrc/lua54/proto.c, csrc/luajit/proto.c).
unsafe fn params(p: *const Proto) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let len = hotlua_proto_params(p, buf.as_mut_ptr().cast(), buf.len());
    buf.truncate(len);
    buf
}

/// Where the parent's code stores the closure of its child `i` (see csrc/lua54/proto.c, csrc/luajit/proto.c).
unsafe fn child_key(parent: *const Proto, i: c_int) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let len = hotlua_child_key(parent, i, buf.as_mut_ptr().cast(), buf.len());
    buf.truncate(len);
    buf
}

/// Appends to `slots`, for each upvalue of `new`, `old`'s upvalue of the same name, or
/// `Unknown`; false, having appended nothing, when either has no names (stripped code). Names
/// are read in place: a module of ten thousand functions is remapped without a list per
/// function.
unsafe fn remap(old: *const Proto, new: *const Proto, slots: &mut Vec<Slot>) -> mlua::Result<bool> {
    let name = |p: *const Proto, i: c_int| -> Option<&[u8]> {
        let mut len = 0;
        let name = hotlua_proto_upvalue_name(p, i, &mut len);
        (!name.is_null()).then(|| std::slice::from_raw_parts(name.cast::<u8>(), len))
    };
    let (old_count, new_count) = (hotlua_proto_nupvalues(old), hotlua_proto_nupvalues(new));
    if (0..old_count).any(|i| name(old, i).is_none())
        || (0..new_count).any(|i| name(new, i).is_none())
    {
        return Ok(false);
    }
    slots.grow_by(new_count as usize)?;
    slots.extend((0..new_count).map(|i| {
        let wanted = name(new, i);
        let mut found = (0..old_count).filter(|&j| name(old, j) == wanted);
        match (found.next(), found.next()) {
            (Some(index), None) => Slot::Old(index),
            _ => Slot::Unknown,
        }
    }));
    Ok(true)
}

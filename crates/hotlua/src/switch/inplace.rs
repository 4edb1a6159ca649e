//! Engine `inplace`: every Lua closure of the old version is pointed at its new prototype, in
//! place, so every reference to it, wherever it is held, runs the new code untouched — module
//! functions (which keep their identity) and closures the module created at run time alike.
//!
//! 1. **Prototypes pair by place.** Each pair of old and new functions the planner paired by
//!    path pairs their prototypes; the prototypes nested in a paired pair pair by *where the
//!    parent's code stores their closure* (the local it initialises, the field, global or
//!    upvalue it is assigned to, `return`, the argument of a named call), never by index or
//!    line. Siblings whose place is ambiguous pair only when their bodies are identical;
//!    otherwise they, and everything nested in them, keep the old code (reported).
//! 2. **Upvalues remap by name** (compared by content; stripped code is refused). A closure
//!    the planner paired takes the new closure's cells, which the planner already joined to
//!    the live ones; any other closure keeps its own cells, reordered by name. A new upvalue
//!    it does not have cannot be known: that closure keeps its old code.
//! 3. **One scan** of the collector's object list (C shim, csrc/inplace.c) retargets every
//!    closure whose prototype is paired, after giving each frame of a suspended coroutine that
//!    runs one a private copy of its closure (it resumes in the old code with the old
//!    constants). Closures on frames of running threads are left as they are; the module
//!    functions among them, and those whose new version needs more upvalues than they were
//!    allocated with, have their references switched to the new function by the walk.
//!
//! Unsafe code: the FFI calls into the shim. Every pointer handed to it comes from the shim
//! itself or from `lua_topointer` of a function the plan holds, and the collector is stopped
//! for the whole reload (the caller's `CollectorPause`), so no object it points to is freed.

use std::collections::hash_map::Entry;
use std::ffi::{c_char, c_int, c_void};

use mlua::ffi::lua_State;
use mlua::Lua;
use rustc_hash::{FxHashMap, FxHashSet};

use super::LeftOld;
use crate::plan::Plan;

/// A `Proto *` of the vendored Lua, opaque here.
type Proto = c_void;

/// Mirrors `HotluaPlan` in csrc/inplace.c.
#[repr(C)]
struct CPlan {
    proto_keys: *const *const Proto,
    proto_values: *const usize,
    proto_mask: usize,
    new_protos: *const *const Proto,
    remap_offset: *const usize,
    remap: *const c_int,
    cells: *const *const c_void,
    pair_keys: *const *const c_void,
    pair_values: *const *const c_void,
    pair_mask: usize,
    fallback: *mut *const c_void,
    fallback_len: usize,
    objects_scanned: usize,
    pairs_retargeted: usize,
    runtime_retargeted: usize,
    left_running: usize,
    left_upvalue: usize,
    left_layout: usize,
    left_unpaired: usize,
    frames_running: usize,
    frames_copied: usize,
}

extern "C" {
    fn hotlua_proto_of(state: *mut lua_State, idx: c_int) -> *const Proto;
    fn hotlua_closure_of(state: *mut lua_State, idx: c_int) -> *const c_void;
    fn hotlua_proto_nchildren(p: *const Proto) -> c_int;
    fn hotlua_proto_child(p: *const Proto, i: c_int) -> *const Proto;
    fn hotlua_proto_nupvalues(p: *const Proto) -> c_int;
    fn hotlua_proto_upvalue_name(p: *const Proto, i: c_int, len: *mut usize) -> *const c_char;
    fn hotlua_proto_source(p: *const Proto, len: *mut usize) -> *const c_char;
    fn hotlua_proto_line(p: *const Proto) -> c_int;
    fn hotlua_proto_upvalue_origin(p: *const Proto, i: c_int, instack: *mut c_int) -> c_int;
    fn hotlua_closure_cell(cl: *const c_void, i: c_int) -> *const c_void;
    fn hotlua_child_key(p: *const Proto, child: c_int, buf: *mut c_char, cap: usize) -> usize;
    fn hotlua_proto_same_body(a: *const Proto, b: *const Proto) -> c_int;
    fn hotlua_inplace_run(state: *mut lua_State, plan: *mut CPlan) -> c_int;
}

/// One pair of the planner, as the collector sees it.
#[derive(Clone, Copy)]
struct RawPair {
    old_closure: *const c_void,
    old_proto: *const Proto,
    new_closure: *const c_void,
    new_proto: *const Proto,
}

/// Retargets the closures of the old version and records what it did in `report`.
pub(crate) fn switch(lua: &Lua, plan: &Plan, report: &mut crate::Report) -> mlua::Result<()> {
    let raw = raw_pairs(lua, plan)?;
    let sources: FxHashSet<&[u8]> = plan.sources.iter().map(|s| s.as_bytes()).collect();
    let mut walked: Vec<usize> = Vec::new();
    let mut pairs = Vec::new();
    for (index, pair) in raw.iter().enumerate() {
        match pair {
            // SAFETY: both prototypes belong to closures `plan.replaced` holds.
            Some(pair)
                if unsafe { from(pair.old_proto, &sources) && from(pair.new_proto, &sources) } =>
            {
                pairs.push(*pair)
            }
            // A C function, or a function of another file: only the walk can switch it.
            _ => walked.push(index),
        }
    }

    let mut pairing = Pairing::default();
    // SAFETY: every prototype reached is a live prototype of a closure the plan holds, or a
    // child of one (children live as long as their parent).
    unsafe { pairing.pair(&pairs) };
    let tables = Tables::new(&pairing, &pairs);
    let mut fallback: Vec<*const c_void> = vec![std::ptr::null(); pairs.len()];
    let mut c_plan = tables.c_plan(fallback.as_mut_ptr());
    let mut status = 0;
    // SAFETY: `c_plan` points into `tables` and `fallback`, which outlive the call; the shim
    // reads them and writes at most `pairs.len()` entries of `fallback`. exec_raw runs it in
    // a protected call (copying frame closures may raise "not enough memory"); the collector
    // is stopped by the caller.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            status = hotlua_inplace_run(state, &mut c_plan);
        })?;
    }
    if status != 0 {
        // The scan's own memory could not be allocated; nothing was retargeted.
        report.warnings.push(
            "engine 'inplace' could not allocate its scan: every reference switched by the walk"
                .to_owned(),
        );
        let switched = super::walk_pairs(lua, plan, plan.replaced.iter())?;
        report.engine = "walk";
        report.references = switched.references;
        report.objects_visited = switched.objects_visited;
        report.closures_left_old = switched.closures_left_old;
        report.frames_left_old = switched.frames_left_old;
        return Ok(());
    }

    // Module functions the scan could not retarget: their references go to the new function.
    let left: FxHashSet<usize> = fallback[..c_plan.fallback_len]
        .iter()
        .map(|&p| p as usize)
        .collect();
    let by_closure: FxHashMap<usize, usize> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, pair)| pair.map(|pair| (pair.old_closure as usize, i)))
        .collect();
    walked.extend(left.iter().filter_map(|p| by_closure.get(p).copied()));
    if !walked.is_empty() {
        let switched =
            super::walk_pairs(lua, plan, walked.iter().map(|&index| &plan.replaced[index]))?;
        report.references = switched.references;
        report.objects_visited += switched.objects_visited;
        report.warnings.push(format!(
            "{} module functions could not take their new code in place (on a running frame, \
             or more upvalues than allocated, or not Lua functions of the module): references \
             to them were switched to the new functions",
            walked.len()
        ));
    }
    report.warnings.extend(pairing.warnings);
    report.objects_visited += c_plan.objects_scanned;
    report.closures_upgraded = c_plan.pairs_retargeted + c_plan.runtime_retargeted;
    report.closures_left_old_why = LeftOld {
        running_frame: c_plan.left_running,
        unknown_upvalue: c_plan.left_upvalue,
        upvalue_layout: c_plan.left_layout,
        unpaired_prototype: c_plan.left_unpaired,
    };
    report.closures_left_old =
        c_plan.left_running + c_plan.left_upvalue + c_plan.left_layout + c_plan.left_unpaired;
    report.frames_left_old = c_plan.frames_running + c_plan.frames_copied;
    Ok(())
}

/// The closures and prototypes of the planner's pairs; `None` where either side is not a Lua
/// function.
fn raw_pairs(lua: &Lua, plan: &Plan) -> mlua::Result<Vec<Option<RawPair>>> {
    let list = lua.create_table_with_capacity(plan.replaced.len() * 2, 0)?;
    for (old, new) in &plan.replaced {
        list.raw_push(old)?;
        list.raw_push(new)?;
    }
    let mut raw = Vec::with_capacity(plan.replaced.len());
    // SAFETY: index 1 of the fresh C frame is `list`; each function read is pushed, inspected
    // and popped, so the stack never grows by more than two slots (LUA_MINSTACK is 20).
    unsafe {
        lua.exec_raw::<()>(&list, |state| {
            for i in 0..plan.replaced.len() {
                mlua::ffi::lua_rawgeti(state, 1, (2 * i + 1) as mlua::ffi::lua_Integer);
                mlua::ffi::lua_rawgeti(state, 1, (2 * i + 2) as mlua::ffi::lua_Integer);
                let pair = RawPair {
                    old_closure: hotlua_closure_of(state, -2),
                    old_proto: hotlua_proto_of(state, -2),
                    new_closure: hotlua_closure_of(state, -1),
                    new_proto: hotlua_proto_of(state, -1),
                };
                mlua::ffi::lua_settop(state, 1);
                raw.push((!pair.old_proto.is_null() && !pair.new_proto.is_null()).then_some(pair));
            }
        })?;
    }
    Ok(raw)
}

/// True when prototype `p` was compiled from one of `sources`.
///
/// # Safety
/// `p` is a live prototype.
unsafe fn from(p: *const Proto, sources: &FxHashSet<&[u8]>) -> bool {
    let mut len = 0;
    let source = hotlua_proto_source(p, &mut len);
    !source.is_null() && sources.contains(std::slice::from_raw_parts(source.cast::<u8>(), len))
}

/// Where a retargeted closure's new upvalue comes from.
#[derive(Clone, Copy)]
enum Slot {
    /// Its own old upvalue of that index (same name).
    Old(c_int),
    /// A live cell: the new upvalue is a variable of a module function the planner paired
    /// (a module-level local it joined to the live one).
    Cell(*const c_void),
    /// A local of a call that already returned: cannot be known.
    Unknown,
}

/// Old prototype → new prototype, or `None` for an old prototype that keeps its old code.
#[derive(Default)]
struct Pairing {
    map: FxHashMap<usize, Option<usize>>,
    /// Per paired old prototype: where each upvalue of the new prototype comes from.
    remaps: FxHashMap<usize, Vec<Slot>>,
    /// New prototype → the new prototype it is nested in (for prototypes paired as children).
    new_parent: FxHashMap<usize, usize>,
    /// New prototype of a planner pair → its new closure (`None`: several closures).
    seeds: FxHashMap<usize, Option<*const c_void>>,
    warnings: Vec<String>,
}

impl Pairing {
    /// Pairs the planner's pairs' prototypes and, from them, the whole nested trees.
    ///
    /// # Safety
    /// Every prototype of `pairs` is live; children of live prototypes are live.
    unsafe fn pair(&mut self, pairs: &[RawPair]) {
        for pair in pairs {
            self.insert(pair.old_proto, pair.new_proto);
            self.seeds
                .entry(pair.new_proto as usize)
                .and_modify(|closure| *closure = None)
                .or_insert(Some(pair.new_closure));
        }
        let mut queue: Vec<(*const Proto, *const Proto)> = pairs
            .iter()
            .map(|pair| (pair.old_proto, pair.new_proto))
            .collect();
        let mut done = FxHashSet::default();
        while let Some((old, new)) = queue.pop() {
            if self.map.get(&(old as usize)) != Some(&Some(new as usize)) || !done.insert(old) {
                continue;
            }
            for (old_child, new_child) in self.pair_children(old, new) {
                match new_child {
                    Some(new_child) => {
                        self.new_parent.insert(new_child as usize, new as usize);
                        self.insert(old_child, new_child);
                        queue.push((old_child, new_child));
                    }
                    None => self.keep_old(old_child),
                }
            }
        }
        let paired: Vec<(usize, usize)> = self
            .map
            .iter()
            .filter_map(|(&old, &new)| new.map(|new| (old, new)))
            .collect();
        for (old, new) in paired {
            match remap(old as *const Proto, new as *const Proto) {
                Some(mut remap) => {
                    for (j, slot) in remap.iter_mut().enumerate() {
                        if matches!(slot, Slot::Unknown) {
                            *slot = self.live_cell(new as *const Proto, j as c_int);
                        }
                    }
                    self.remaps.insert(old, remap);
                }
                None => {
                    self.map.insert(old, None);
                    self.warnings.push(format!(
                        "the function at line {} has no upvalue names (stripped code): it keeps \
                         its old code",
                        hotlua_proto_line(old as *const Proto)
                    ));
                }
            }
        }
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

    /// Records `old → new`; an old prototype that two pairs send to different new ones is
    /// ambiguous and keeps its old code.
    unsafe fn insert(&mut self, old: *const Proto, new: *const Proto) {
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
    }

    /// Marks `p` and every prototype nested in it (not paired otherwise) as keeping old code.
    unsafe fn keep_old(&mut self, p: *const Proto) {
        let mut stack = vec![p];
        while let Some(p) = stack.pop() {
            if self.map.contains_key(&(p as usize)) {
                continue;
            }
            self.map.insert(p as usize, None);
            for i in 0..hotlua_proto_nchildren(p) {
                stack.push(hotlua_proto_child(p, i));
            }
        }
    }

    /// Pairs the children of `old` with those of `new` by their place in the parent's code.
    /// Returns every old child with its new counterpart, or `None`.
    unsafe fn pair_children(
        &mut self,
        old: *const Proto,
        new: *const Proto,
    ) -> Vec<(*const Proto, Option<*const Proto>)> {
        type Group = (Vec<*const Proto>, Vec<*const Proto>);
        let mut groups: FxHashMap<Vec<u8>, Group> = FxHashMap::default();
        for i in 0..hotlua_proto_nchildren(old) {
            groups
                .entry(child_key(old, i))
                .or_default()
                .0
                .push(hotlua_proto_child(old, i));
        }
        for i in 0..hotlua_proto_nchildren(new) {
            groups
                .entry(child_key(new, i))
                .or_default()
                .1
                .push(hotlua_proto_child(new, i));
        }
        let mut result = Vec::new();
        for (key, (olds, news)) in groups {
            if olds.len() == 1 && news.len() == 1 {
                result.push((olds[0], Some(news[0])));
                continue;
            }
            for &old_child in &olds {
                let same = |a: *const Proto, b: *const Proto| hotlua_proto_same_body(a, b) != 0;
                let matches: Vec<*const Proto> = news
                    .iter()
                    .copied()
                    .filter(|&n| same(old_child, n))
                    .collect();
                let unique = matches.len() == 1
                    && olds.iter().filter(|&&o| same(o, matches[0])).count() == 1;
                if unique {
                    result.push((old_child, Some(matches[0])));
                } else {
                    if !news.is_empty() {
                        self.warnings.push(format!(
                            "the function at line {} ({}) has no unambiguous counterpart in the \
                             new file: its closures keep their old code",
                            hotlua_proto_line(old_child),
                            String::from_utf8_lossy(&key)
                        ));
                    }
                    result.push((old_child, None));
                }
            }
        }
        result
    }
}

/// Where the parent's code stores the closure of its child `i` (see csrc/inplace.c).
unsafe fn child_key(parent: *const Proto, i: c_int) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let len = hotlua_child_key(parent, i, buf.as_mut_ptr().cast(), buf.len());
    buf.truncate(len);
    buf
}

/// For each upvalue of `new`, `old`'s upvalue of the same name, or `Unknown`. `None` when
/// either has no names (stripped code).
unsafe fn remap(old: *const Proto, new: *const Proto) -> Option<Vec<Slot>> {
    let names = |p: *const Proto| -> Option<Vec<&[u8]>> {
        (0..hotlua_proto_nupvalues(p))
            .map(|i| {
                let mut len = 0;
                let name = hotlua_proto_upvalue_name(p, i, &mut len);
                (!name.is_null()).then(|| std::slice::from_raw_parts(name.cast::<u8>(), len))
            })
            .collect()
    };
    let (old_names, new_names) = (names(old)?, names(new)?);
    Some(
        new_names
            .iter()
            .map(|name| {
                let mut found = old_names.iter().enumerate().filter(|(_, n)| *n == name);
                match (found.next(), found.next()) {
                    (Some((index, _)), None) => Slot::Old(index as c_int),
                    _ => Slot::Unknown,
                }
            })
            .collect(),
    )
}

/// The hash the shim probes with (`hash_ptr` in csrc/inplace.c).
fn hash_ptr(p: usize, mask: usize) -> usize {
    let mut x = p >> 4;
    x ^= x >> 17;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 7) & mask
}

/// Open-addressing tables the shim reads.
struct Tables {
    proto_keys: Vec<*const Proto>,
    proto_values: Vec<usize>,
    new_protos: Vec<*const Proto>,
    remap_offset: Vec<usize>,
    remap: Vec<c_int>,
    cells: Vec<*const c_void>,
    pair_keys: Vec<*const c_void>,
    pair_values: Vec<*const c_void>,
}

impl Tables {
    fn new(pairing: &Pairing, pairs: &[RawPair]) -> Tables {
        let capacity = |n: usize| (2 * n).next_power_of_two().max(16);
        let proto_capacity = capacity(pairing.map.len());
        let mut tables = Tables {
            proto_keys: vec![std::ptr::null(); proto_capacity],
            proto_values: vec![0; proto_capacity],
            new_protos: Vec::new(),
            remap_offset: Vec::new(),
            remap: Vec::new(),
            cells: Vec::new(),
            pair_keys: vec![std::ptr::null(); capacity(pairs.len())],
            pair_values: vec![std::ptr::null(); capacity(pairs.len())],
        };
        for (&old, &new) in &pairing.map {
            let value = match (new, pairing.remaps.get(&old)) {
                (Some(new), Some(remap)) => {
                    tables.new_protos.push(new as *const Proto);
                    tables.remap_offset.push(tables.remap.len());
                    for slot in remap {
                        let code = match *slot {
                            Slot::Old(index) => index,
                            Slot::Unknown => -1,
                            Slot::Cell(cell) => {
                                tables.cells.push(cell);
                                -1 - tables.cells.len() as c_int
                            }
                        };
                        tables.remap.push(code);
                    }
                    tables.new_protos.len()
                }
                _ => 0,
            };
            let mask = proto_capacity - 1;
            let mut slot = hash_ptr(old, mask);
            while !tables.proto_keys[slot].is_null() {
                slot = (slot + 1) & mask;
            }
            tables.proto_keys[slot] = old as *const Proto;
            tables.proto_values[slot] = value;
        }
        let mask = tables.pair_keys.len() - 1;
        for pair in pairs {
            let mut slot = hash_ptr(pair.old_closure as usize, mask);
            while !tables.pair_keys[slot].is_null() {
                slot = (slot + 1) & mask;
            }
            tables.pair_keys[slot] = pair.old_closure;
            tables.pair_values[slot] = pair.new_closure;
        }
        tables
    }

    fn c_plan(&self, fallback: *mut *const c_void) -> CPlan {
        CPlan {
            proto_keys: self.proto_keys.as_ptr(),
            proto_values: self.proto_values.as_ptr(),
            proto_mask: self.proto_keys.len() - 1,
            new_protos: self.new_protos.as_ptr(),
            remap_offset: self.remap_offset.as_ptr(),
            remap: self.remap.as_ptr(),
            cells: self.cells.as_ptr(),
            pair_keys: self.pair_keys.as_ptr(),
            pair_values: self.pair_values.as_ptr(),
            pair_mask: self.pair_keys.len() - 1,
            fallback,
            fallback_len: 0,
            objects_scanned: 0,
            pairs_retargeted: 0,
            runtime_retargeted: 0,
            left_running: 0,
            left_upvalue: 0,
            left_layout: 0,
            left_unpaired: 0,
            frames_running: 0,
            frames_copied: 0,
        }
    }
}

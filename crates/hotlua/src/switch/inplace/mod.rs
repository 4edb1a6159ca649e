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
//! 3. **One scan** of the collector's object list (C shim, csrc/scan.c) retargets every
//!    closure whose prototype is paired as it meets it, logging what the closure was, and
//!    gives each frame of a suspended coroutine that runs one a private copy of the closure
//!    as it was (it resumes in the old code with the old constants). Closures on frames of
//!    running threads are put back as they were; the module functions among them, and those
//!    whose new version needs more upvalues than they were allocated with, have their
//!    references switched to the new function by the walk.
//! 4. **All or nothing**: a walk that fails puts back what it switched and the scan is
//!    abandoned: every closure is put back from the log and the frames run their own
//!    closures again, so nothing changed. No Lua code runs in between.
//!
//! Unsafe code: the FFI calls into the shim. Every pointer handed to it comes from the shim
//! itself or from `lua_topointer` of a function the plan holds, and the collector is stopped
//! for the whole reload (the caller's `CollectorPause`), and Lua 5.4's emergency collection
//! from the scan to its commit or abandon (the shim), so no object it points to is freed.

mod pairing;
mod stale;
mod tables;

use std::ffi::{c_char, c_int, c_void};

use mlua::ffi::lua_State;
use mlua::{Function, Lua, MultiValue, Value};
use rustc_hash::FxHashSet;

use self::pairing::Pairing;
use self::stale::Stale;
use self::tables::{CPlan, Tables};
use super::LeftOld;
use crate::fallible::{self, Grow, TryPush};
use crate::plan::Plan;

/// A `Proto *` of the vendored Lua, opaque here.
type Proto = c_void;

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
    fn hotlua_proto_params(p: *const Proto, buf: *mut c_char, cap: usize) -> usize;
    fn hotlua_prefetch_proto(p: *const Proto, depth: c_int);
    fn hotlua_scan_new() -> *mut c_void;
    fn hotlua_scan_prepare(state: *mut lua_State, plan: *mut CPlan, scan: *mut c_void) -> c_int;
    fn hotlua_scan_commit(scan: *mut c_void);
    fn hotlua_scan_abandon(state: *mut lua_State, scan: *mut c_void);
}

/// One pair of the planner, as the collector sees it.
#[derive(Clone, Copy)]
struct RawPair {
    old_closure: *const c_void,
    old_proto: *const Proto,
    new_closure: *const c_void,
    new_proto: *const Proto,
}

/// Closures the scan replaces by new ones, each with its replacement.
type Replaced = Vec<(Function, Function)>;

/// A scan done (`HotluaScan` in csrc/scan.c): the closures are retargeted, each logged with
/// what it was, and suspended frames run private copies of the old ones; no Lua code has run
/// since. [`Scan::commit`] keeps it; dropping it puts everything back.
struct Scan {
    /// A thread of the Lua state, for the shim's write barriers.
    state: *mut lua_State,
    /// The shim's scan; it keeps a pointer to the plan it ran with, which tells how to put
    /// back what it did: the plan outlives it (declared before it in [`switch`]).
    scan: *mut c_void,
}

impl Scan {
    /// Runs the shim's scan; `None` when its own memory could not be allocated (what it did
    /// is put back).
    /// With it, the closures it replaces by new ones (their new version needs more upvalues
    /// than they have), each with its replacement, for the walk to switch; and the run-time
    /// closures it leaves old, each with the anchor of the prototype it would take.
    fn prepare(
        lua: &Lua,
        c_plan: &mut CPlan,
    ) -> mlua::Result<Option<(Scan, Replaced, Vec<Stale>)>> {
        // SAFETY: malloc; checked for NULL below.
        let raw = unsafe { hotlua_scan_new() };
        if raw.is_null() {
            return Ok(None);
        }
        let mut scan = Scan {
            state: std::ptr::null_mut(),
            scan: raw,
        };
        let mut status = 0;
        // SAFETY: `c_plan` points into tables that outlive the call; the shim reads them and
        // writes at most one `fallback` entry per pair. exec_raw runs it in a protected call
        // (copying frame closures and making replacements may raise "not enough memory":
        // `scan` then counts the copies made, which its drop puts back); the collector is
        // stopped by the caller. What the shim leaves on the frame (old closure, replacement,
        // ...) comes back as the values.
        let replaced: MultiValue = unsafe {
            lua.exec_raw((), |state| {
                scan.state = state;
                status = hotlua_scan_prepare(state, c_plan, scan.scan);
            })?
        };
        if status != 0 {
            return Ok(None);
        }
        // Pairs of closures, `true`, then closures left old with their anchor or `false`.
        let (mut pairs, mut left) = (Vec::new(), Vec::new());
        let mut values = replaced.into_iter();
        while let Some(Value::Function(old)) = values.next() {
            if let Some(Value::Function(new)) = values.next() {
                pairs.try_push((old, new))?;
            }
        }
        while let (Some(Value::Function(closure)), Some(anchor)) = (values.next(), values.next()) {
            let anchor = match anchor {
                Value::Function(anchor) => Some(anchor),
                _ => None,
            };
            left.try_push(Stale { closure, anchor })?;
        }
        Ok(Some((scan, pairs, left)))
    }

    /// Keeps what the scan did.
    fn commit(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the scan came from hotlua_scan_new; commit only frees it.
        unsafe { hotlua_scan_commit(this.scan) };
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        // SAFETY: as for commit; `state` is null only when the prepare step never ran, and
        // then no copy was made and the shim only frees.
        unsafe { hotlua_scan_abandon(self.state, self.scan) };
    }
}

/// Retargets the closures of the old version and records what it did in `report`.
pub(crate) fn switch(lua: &Lua, plan: &Plan, report: &mut crate::Report) -> mlua::Result<()> {
    let batch = batch_pairs(lua, plan)?;
    let (stale, anchors) = stale::read(lua, &plan.sources)?;
    // Each closure left old with the anchor of what it would take (itself when none).
    let stale_raw = raw_pairs(
        lua,
        &fallible::collect(
            stale
                .iter()
                .map(|s| (&s.closure, s.anchor.as_ref().unwrap_or(&s.closure))),
        )?,
    )?;
    let deleted = raw_pairs(
        lua,
        &fallible::collect(plan.kept_deleted.iter().map(|f| (f, f)))?,
    )?;
    let mut walked: Vec<usize> = Vec::new();
    let mut pairs = Vec::new();
    pairs.grow_by(batch.len())?;
    for (index, pair) in batch.iter().enumerate() {
        match pair {
            Some(pair) => pairs.push(*pair),
            // A C function, or a function of another file: only the walk can switch it.
            None => walked.try_push(index)?,
        }
    }

    let mut pairing = Pairing::default();
    // SAFETY: every prototype reached is a live prototype of a closure the plan holds, or a
    // child of one (children live as long as their parent).
    unsafe { pairing.pair(&pairs)? };
    // Functions the new version deleted keep their old code, and so do their closures: the
    // scan counts them.
    for deleted in deleted.iter().flatten() {
        // SAFETY: the prototype of a function the plan holds.
        unsafe { pairing.keep_old(deleted.old_proto)? };
    }
    // Closures earlier reloads left old: tried again where what they would have taken pairs.
    let anchored = fallible::collect(
        stale
            .iter()
            .zip(&stale_raw)
            .filter_map(|(entry, raw)| raw.filter(|_| entry.anchor.is_some())),
    )?;
    // SAFETY: each is the prototype of a closure `stale` holds.
    unsafe { pairing.pair_stale(&anchored)? };
    // Those the scan does not meet again (what they would take did not pair) are counted here.
    let mut kept = Vec::new();
    for (entry, raw) in stale.into_iter().zip(&stale_raw) {
        let met = raw.is_some_and(|raw| pairing.map.contains_key(&(raw.old_proto as usize)));
        if !met {
            kept.try_push(entry)?;
        }
    }
    let tables = Tables::new(&pairing, &pairs)?;
    let mut fallback: Vec<*const c_void> = fallible::filled(std::ptr::null(), pairs.len())?;
    let mut c_plan = tables.c_plan(fallback.as_mut_ptr(), &anchors);
    let scan = Scan::prepare(lua, &mut c_plan)?;
    let Some((scan, replaced, left_old)) = scan else {
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
    };

    // Module functions the scan will not retarget: their references go to the new function.
    // (Few: module functions on running frames, or with more upvalues than allocated.)
    let left: FxHashSet<usize> = fallback[..c_plan.fallback_len]
        .iter()
        .map(|&p| p as usize)
        .collect();
    for (index, pair) in batch.iter().enumerate() {
        if pair.is_some_and(|pair| left.contains(&(pair.old_closure as usize))) {
            walked.try_push(index)?;
        }
    }
    if !walked.is_empty() || !replaced.is_empty() {
        // All or nothing: a walk that fails puts back what it switched, and the scan is
        // abandoned (dropped) before it retargeted anything.
        let pairs = walked
            .iter()
            .map(|&index| plan.replaced.pair(index))
            .chain(replaced.iter().map(|pair| Ok(pair.clone())));
        let switched = super::walk_pairs(lua, plan, pairs)?;
        report.references = switched.references;
        report.objects_visited += switched.objects_visited;
        if !walked.is_empty() {
            report.warnings.push(format!(
                "{} module functions could not take their new code in place (on a running \
                 frame, or more upvalues than allocated, or not Lua functions of the module): \
                 references to them were switched to the new functions",
                walked.len()
            ));
        }
    }
    scan.commit();
    let earlier = kept.len();
    // Bookkeeping: a reload that is done must not fail on it (the next one then counts less).
    if stale::record(lua, &plan.sources, left_old, kept).is_err() {
        report
            .warnings
            .push("closures left old could not be remembered for the next reload".to_owned());
    }
    report.warnings.extend(pairing.warnings);
    report.objects_visited += c_plan.objects_scanned;
    report.closures_upgraded = c_plan.pairs_retargeted + c_plan.runtime_retargeted;
    report.closures_left_old_why = LeftOld {
        running_frame: c_plan.left_running,
        unknown_upvalue: c_plan.left_upvalue,
        unpaired_prototype: c_plan.left_unpaired,
        ambiguous_prototype: c_plan.left_ambiguous,
        upvalue_scope_changed: c_plan.left_scope,
        earlier_reload: earlier,
    };
    report.closures_left_old = earlier
        + c_plan.left_running
        + c_plan.left_upvalue
        + c_plan.left_unpaired
        + c_plan.left_ambiguous
        + c_plan.left_scope;
    report.frames_left_old = c_plan.frames_running + c_plan.frames_copied;
    Ok(())
}

/// The planner's pairs as the collector sees them: `Some` for a pair of Lua functions compiled
/// from the batch's files (those the scan retargets), from the addresses the planner read,
/// or, for a pair it did not read so, read now.
fn batch_pairs(lua: &Lua, plan: &Plan) -> mlua::Result<Vec<Option<RawPair>>> {
    let count = plan.replaced.len();
    let unread = fallible::collect((0..count).filter(|&at| plan.replaced.addresses(at).is_none()))?;
    let mut read = raw_pairs_at(lua, plan.replaced.list(), &unread)?.into_iter();
    let mut sources = Sources::new(&plan.sources);
    let mut batch = Vec::new();
    batch.grow_by(count)?;
    for at in 0..count {
        batch.push(match plan.replaced.addresses(at) {
            Some(known) => known.from_sources.then_some(RawPair {
                old_closure: known.old_closure as *const c_void,
                old_proto: known.old_proto as *const Proto,
                new_closure: known.new_closure as *const c_void,
                new_proto: known.new_proto as *const Proto,
            }),
            // SAFETY: both prototypes belong to closures `plan.replaced` holds.
            None => read.next().flatten().filter(|pair| unsafe {
                sources.made(pair.old_proto) && sources.made(pair.new_proto)
            }),
        });
    }
    Ok(batch)
}

/// The closures and prototypes of pairs of functions (closures left old with their anchors,
/// functions the new version deleted); `None` where either side is not a Lua function.
fn raw_pairs(lua: &Lua, pairs: &[(&Function, &Function)]) -> mlua::Result<Vec<Option<RawPair>>> {
    let list = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
    for &(old, new) in pairs {
        list.raw_push(old)?;
        list.raw_push(new)?;
    }
    raw_pairs_at(lua, &list, &fallible::collect(0..pairs.len())?)
}

/// [`raw_pairs`] of the pairs `at` (0-based) of a Lua list `old, new, old, new, ...`.
fn raw_pairs_at(lua: &Lua, list: &mlua::Table, at: &[usize]) -> mlua::Result<Vec<Option<RawPair>>> {
    let mut raw = Vec::new();
    raw.grow_by(at.len())?;
    if at.is_empty() {
        return Ok(raw);
    }
    // SAFETY: index 1 of the fresh C frame is `list`; each function read is pushed, inspected
    // and popped, so the stack never grows by more than two slots (LUA_MINSTACK is 20).
    unsafe {
        lua.exec_raw::<()>(list, |state| {
            for &i in at {
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

/// The batch's chunk names, and which source strings met so far are one of them: every
/// prototype of a chunk shares one source string, so ten thousand prototypes compare a
/// pointer or two, not ten thousand names.
struct Sources<'a> {
    names: &'a [String],
    met: Vec<(*const c_char, bool)>,
}

impl<'a> Sources<'a> {
    fn new(names: &'a [String]) -> Sources<'a> {
        Sources {
            names,
            met: Vec::new(),
        }
    }

    /// True when prototype `p` was compiled from one of the batch's files.
    ///
    /// # Safety
    /// `p` is a live prototype (its source string then lives as long).
    unsafe fn made(&mut self, p: *const Proto) -> bool {
        let mut len = 0;
        let source = hotlua_proto_source(p, &mut len);
        if source.is_null() {
            return false;
        }
        if let Some(&(_, from)) = self.met.iter().find(|(met, _)| *met == source) {
            return from;
        }
        let bytes = std::slice::from_raw_parts(source.cast::<u8>(), len);
        let from = self.names.iter().any(|name| name.as_bytes() == bytes);
        // A few distinct sources at most; past that, compare names each time.
        if self.met.len() < 64 {
            self.met.push((source, from));
        }
        from
    }
}

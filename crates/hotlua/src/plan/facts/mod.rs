//! What the planner knows of each function it meets: whether the batch's files made it, its
//! prototype, its upvalues' names and cells; and each cell's value, read once per cell.
//!
//! Read through the C API (`lua_getinfo`, `lua_getupvalue`, `lua_upvalueid`), either for one
//! function or for every function a table holds in one call ([`Facts::read_fields`]): a
//! module table of ten thousand functions is then one protected call, not ten thousand, and
//! its closures are read while the table's walk has them in the cache.

use std::cell::Cell;
use std::ffi::c_int;
use std::num::NonZeroUsize;
use std::rc::Rc;

use mlua::{ffi, Function, Lua, MultiValue, Table, Value};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use self::read::{prefetch_ahead, Read};
use super::indexed::Indexed;
use crate::fallible::{Grow, TryPush};
use crate::Result;

mod read;

/// An upvalue of a function as the planner keeps it: its value is in [`Facts::cell_value`],
/// read once per cell, not once per function (ten thousand functions of a module share a
/// handful of cells).
#[derive(Clone)]
pub(crate) struct UpvalueFact {
    /// The local's name; `(no name)` for stripped Lua functions.
    pub name: Rc<str>,
    /// `lua_upvalueid`: equal for two closures exactly when they share the variable.
    pub cell: usize,
}

/// True for two upvalue names of [`Facts`]: held once each, they compare by address (by text
/// when memory ran short and a name could not be shared).
pub(super) fn same_name(a: &Rc<str>, b: &Rc<str>) -> bool {
    Rc::ptr_eq(a, b) || a == b
}

/// Functions [`Facts::read_fields`] gathers on the stack in one call: Lua 5.1 and LuaJIT give a
/// C function 8000 stack slots (`LUAI_MAXCSTACK`), so a bigger module read in one call used
/// to read none of them (each fell to the slow paths, one protected call a function).
const READ_ROUND: usize = 1024;

/// Names [`Facts::name`] remembers by address.
const RECENT_NAMES: usize = 8;

/// What [`Facts::read_fields`] found in a table.
pub(super) struct FieldsRead {
    /// Functions whose facts it read (those not read before).
    pub functions: usize,
    /// Their upvalues.
    pub upvalues: usize,
    /// Fields holding a function, read before or not.
    pub function_fields: usize,
}

/// What the planner needs to know of a function, as [`Facts`] lends it.
#[derive(Clone, Copy)]
pub(crate) struct FunctionFacts<'a> {
    /// A Lua function (not a C function, not a main chunk) compiled from one of the batch's
    /// files.
    pub from_sources: bool,
    /// For a Lua function: its prototype's identity (the address of its source string, which
    /// every prototype of one chunk shares, and the lines it spans). Two closures with the same
    /// prototype are two instances of one function of the source.
    pub prototype: Option<(NonZeroUsize, i32, i32)>,
    /// The address of its prototype, where it was read from the prototype (engine
    /// `inplace`'s layout proven): what the engine's switch would read again.
    #[cfg(hotlua_inplace)]
    pub proto_address: Option<NonZeroUsize>,
    /// Its upvalues, read for every Lua function.
    pub upvalues: &'a [UpvalueFact],
}

impl<'a> FunctionFacts<'a> {
    /// Its upvalues with their 1-based indices, as the C API counts them (an index is not
    /// stored: ten thousand functions' facts are written, and read, in a sweep over memory).
    pub(crate) fn numbered_upvalues(&self) -> impl Iterator<Item = (i32, &'a UpvalueFact)> {
        (1..).zip(self.upvalues)
    }

    /// A copy the planner can keep while it changes itself.
    pub(crate) fn detach(self) -> Result<DetachedFacts> {
        let mut upvalues = SmallVec::new();
        upvalues
            .try_reserve(self.upvalues.len())
            .map_err(|_| crate::fallible::out_of_memory())?;
        upvalues.extend(self.upvalues.iter().cloned());
        Ok(DetachedFacts {
            from_sources: self.from_sources,
            upvalues,
        })
    }
}

/// [`FunctionFacts`] copied out of [`Facts`] (the few upvalues a function has held inline).
pub(crate) struct DetachedFacts {
    pub from_sources: bool,
    pub upvalues: SmallVec<[UpvalueFact; 4]>,
}

impl DetachedFacts {
    /// As [`FunctionFacts::numbered_upvalues`].
    pub(crate) fn numbered_upvalues(&self) -> impl Iterator<Item = (i32, &UpvalueFact)> {
        (1..).zip(&self.upvalues)
    }
}

/// A function's facts as [`Facts`] holds them: its upvalues are a run of [`Facts::upvalues`],
/// one list for every function, so that ten thousand functions' facts take 40 bytes each,
/// written and read in a sweep over memory (inline, they took 144).
struct Stored {
    prototype: Option<(NonZeroUsize, i32, i32)>,
    #[cfg(hotlua_inplace)]
    proto_address: Option<NonZeroUsize>,
    first_upvalue: usize,
    upvalue_count: u32,
    from_sources: bool,
}

/// The facts of every function met, by identity, and the value of every cell they carry.
pub(super) struct Facts {
    /// Chunk names of the batch's files.
    sources: Vec<String>,
    /// Held in one list, not one allocation each: ten thousand functions are read, and
    /// dropped, in one sweep over memory.
    by_function: Indexed<Stored>,
    /// The upvalues of every function read, each function's in a run (see [`Stored`]).
    upvalues: Vec<UpvalueFact>,
    /// Upvalue names, each held once: comparing two is comparing pointers.
    names: FxHashMap<Box<[u8]>, Rc<str>>,
    /// The names last read, by the address of their bytes (see [`Facts::name`]).
    recent_names: [Option<(usize, Rc<str>)>; RECENT_NAMES],
    /// The entry of `recent_names` the next name read replaces.
    next_recent: usize,
    cell_values: FxHashMap<usize, Value>,
    /// Where [`Read::read_by_prototype`] has the shim write what it reads of each function.
    #[cfg(hotlua_inplace)]
    function_read: read::FunctionRead,
    /// Read functions from their prototypes ([`Read::read_by_prototype`]): engine `inplace`'s
    /// layout is proven in this state.
    by_prototype: bool,
    /// Where [`Facts::known_in_order`] last found a function of each [`Walk`].
    last_found: [Cell<usize>; 2],
}

/// The two walks over a module's fields that look up every function's facts: those of the
/// new table, and those of the live one (met in the new table's order, which is the live
/// table's when both have the same keys, added in the same order). Each meets the functions
/// in the order [`Facts::read_fields`] read them.
#[derive(Clone, Copy)]
pub(super) enum Walk {
    New = 0,
    Live = 1,
}

impl Facts {
    pub(super) fn new(lua: &Lua, sources: Vec<String>) -> Facts {
        Facts {
            sources,
            by_function: Indexed::default(),
            upvalues: Vec::new(),
            names: FxHashMap::default(),
            recent_names: Default::default(),
            next_recent: 0,
            cell_values: FxHashMap::default(),
            #[cfg(hotlua_inplace)]
            function_read: Default::default(),
            by_prototype: by_prototype(lua),
            last_found: Default::default(),
        }
    }

    pub(super) fn into_sources(self) -> Vec<String> {
        self.sources
    }

    /// The facts of `function`, read now if they were not yet.
    pub(super) fn of(&mut self, lua: &Lua, function: &Function) -> Result<FunctionFacts<'_>> {
        let identity = function.to_pointer() as usize;
        if !self.by_function.contains(identity) {
            let mut read = Read::default();
            // SAFETY: index 1 is `function` (the only argument), at the top as `read_top`
            // needs; the values it keeps go below it, and popping it leaves exactly them on
            // the frame.
            let values: MultiValue = unsafe {
                lua.exec_raw(function, |state| {
                    read.top(state, self, -2);
                    ffi::lua_pop(state, 1);
                })?
            };
            self.take(read, values)?;
        }
        let stored = self.by_function.get(identity).expect("the facts just read");
        Ok(self.lend(stored))
    }

    /// Reads the facts of every function `table` holds as a value that were not read yet, a
    /// round of [`READ_ROUND`] functions a call; [`Facts::of`] then finds them.
    pub(super) fn read_fields(&mut self, lua: &Lua, table: &Table) -> Result<FieldsRead> {
        let mut fields = FieldsRead {
            functions: 0,
            upvalues: 0,
            function_fields: 0,
        };
        let mut from = Value::Nil;
        loop {
            let (read, mut values, more) = self.read_round(lua, table, &from)?;
            fields.functions += read.functions;
            fields.upvalues += read.upvalues;
            fields.function_fields += read.function_fields;
            let next = if more { values.pop_back() } else { None };
            self.take(read, values)?;
            match next {
                Some(key) => from = key,
                None => return Ok(fields),
            }
        }
    }

    /// One round of [`Facts::read_fields`]: the functions of `table` after the key `from`
    /// (`nil`: from the first) until [`READ_ROUND`] are gathered. Returns what it read, the
    /// values of the cells it kept, then (when the round ended before the table did) the key
    /// to go on after, and whether there is one.
    fn read_round(
        &mut self,
        lua: &Lua,
        table: &Table,
        from: &Value,
    ) -> Result<(Read, MultiValue, bool)> {
        let mut read = Read::default();
        let mut order: Vec<c_int> = Vec::new();
        let mut more = false;
        // SAFETY: index 1 is `table`, index 2 `from`. First every function value not read yet
        // is moved onto the stack (one the table holds twice is read twice, and kept once):
        // lua_next pops the key at the top and pushes the next key and its value (nothing at
        // the end), and lua_insert puts the value below the key (room for both made first),
        // so the key is at the top again. Then each function, copied to the top, is read by
        // `read_top`, which keeps cell values below the copy. Last the kept values are copied
        // down over the arguments and the functions (each source slot is above the slot it is
        // copied into, and no slot is written before it is read), followed by the key when the
        // round ended first (copied to the top beforehand, as its slot may be written), and the
        // rest dropped.
        let values: MultiValue = unsafe {
            lua.exec_raw((table, from), |state| {
                ffi::lua_pushvalue(state, 2);
                loop {
                    if order.len() == READ_ROUND {
                        more = true;
                        break;
                    }
                    if ffi::lua_next(state, 1) == 0 {
                        break;
                    }
                    let identity = ffi::lua_topointer(state, -1) as usize;
                    let is_function = ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION;
                    read.function_fields += usize::from(is_function);
                    if is_function
                        && !self.by_function.contains(identity)
                        && ffi::lua_checkstack(state, 3) != 0
                        && order.try_push(ffi::lua_gettop(state) - 1).is_ok()
                    {
                        ffi::lua_insert(state, -2);
                    } else {
                        ffi::lua_pop(state, 1);
                    }
                }
                read.failed |= self.by_function.reserve(order.len()).is_err();
                for (at, &slot) in order.iter().enumerate() {
                    if ffi::lua_checkstack(state, 3) == 0 {
                        break;
                    }
                    if self.by_prototype {
                        prefetch_ahead(state, &order, at);
                    }
                    ffi::lua_pushvalue(state, slot);
                    read.top(state, self, -2);
                    ffi::lua_pop(state, 1);
                }
                let kept = read.cells.len() as c_int;
                let below = ffi::lua_gettop(state) - kept;
                if more {
                    ffi::lua_pushvalue(state, below);
                }
                for at in 1..=kept {
                    ffi::lua_pushvalue(state, below + at);
                    ffi::lua_replace(state, at);
                }
                if more {
                    ffi::lua_replace(state, kept + 1);
                }
                ffi::lua_settop(state, kept + c_int::from(more));
            })?
        };
        Ok((read, values, more))
    }

    /// Makes room for the facts of `functions` more functions at once.
    pub(super) fn reserve(&mut self, functions: usize) -> Result<()> {
        self.by_function.reserve(functions)
    }

    /// The facts of the function of that identity, if they were read, looked up by a [`Walk`]:
    /// the functions it meets in the order they were read are
    /// found without a hash lookup, their facts read from memory in order.
    pub(super) fn known_in_order(&self, identity: usize, walk: Walk) -> Option<FunctionFacts<'_>> {
        self.by_function
            .get_in_order(identity, &self.last_found[walk as usize])
            .map(|stored| self.lend(stored))
    }

    fn lend<'a>(&'a self, stored: &Stored) -> FunctionFacts<'a> {
        FunctionFacts {
            from_sources: stored.from_sources,
            prototype: stored.prototype,
            #[cfg(hotlua_inplace)]
            proto_address: stored.proto_address,
            upvalues: &self.upvalues
                [stored.first_upvalue..stored.first_upvalue + stored.upvalue_count as usize],
        }
    }

    /// The value of a cell of a function whose facts were read.
    pub(super) fn cell_value(&self, cell: usize) -> Value {
        self.cell_values.get(&cell).cloned().unwrap_or(Value::Nil)
    }

    /// For a cell holding a table or a function: whether it is a table, and its identity.
    pub(super) fn cell_object(&self, cell: usize) -> Option<(bool, usize)> {
        match self.cell_values.get(&cell) {
            Some(Value::Table(table)) => Some((true, table.to_pointer() as usize)),
            Some(Value::Function(function)) => Some((false, function.to_pointer() as usize)),
            _ => None,
        }
    }

    /// True if the cell holds a table or a function (whose values the planner pairs).
    pub(super) fn cell_holds_object(&self, cell: usize) -> bool {
        matches!(
            self.cell_values.get(&cell),
            Some(Value::Table(_) | Value::Function(_))
        )
    }

    /// Stores the values of the cells `read` met first, in order (it stored the functions'
    /// facts as it read them).
    fn take(&mut self, read: Read, values: MultiValue) -> Result<()> {
        if read.failed {
            return Err(crate::fallible::out_of_memory().into());
        }
        self.cell_values.grow_by(read.cells.len())?;
        self.cell_values.extend(read.cells.into_iter().zip(values));
        Ok(())
    }

    fn name(&mut self, bytes: &[u8]) -> Rc<str> {
        // A module's functions name the same few upvalues, each one string of Lua's (short
        // strings are held once): one of the names last read is most often it, found by the
        // address of its bytes (all are compared: two strings whose addresses would share a
        // slot of a table would push each other out at every read).
        let address = bytes.as_ptr() as usize;
        let mut recent = self.recent_names.iter().flatten();
        if let Some((_, name)) =
            recent.find(|(at, name)| *at == address && name.as_bytes() == bytes)
        {
            return name.clone();
        }
        let name = self.shared_name(bytes);
        self.recent_names[self.next_recent] = Some((address, name.clone()));
        self.next_recent = (self.next_recent + 1) % RECENT_NAMES;
        name
    }

    fn shared_name(&mut self, bytes: &[u8]) -> Rc<str> {
        if let Some(name) = self.names.get(bytes) {
            return name.clone();
        }
        let name: Rc<str> = String::from_utf8_lossy(bytes).into();
        // Out of memory the name is just not shared.
        if self.names.try_reserve(1).is_ok() {
            self.names.insert(bytes.into(), name.clone());
        }
        name
    }
}

/// True where [`Read::read_by_prototype`] can read functions: engine `inplace`'s layout is
/// proven in this state.
#[cfg(hotlua_inplace)]
fn by_prototype(lua: &Lua) -> bool {
    crate::layout::proven(lua)
}

#[cfg(not(hotlua_inplace))]
fn by_prototype(_: &Lua) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name is held once, whatever address its bytes are read at, and bytes read at an
    /// address another name was read at are that other name only if they are the same.
    #[test]
    fn names_are_found_by_address_and_bytes() {
        let lua = Lua::new();
        let mut facts = Facts::new(&lua, Vec::new());
        let mut at_one_address = *b"count";
        let first = facts.name(&at_one_address);
        let elsewhere = facts.name(b"count".to_vec().as_slice());
        assert!(Rc::ptr_eq(&first, &elsewhere));
        at_one_address.copy_from_slice(b"total");
        assert_eq!(&*facts.name(&at_one_address), "total");
        // More names than are remembered by address: each still found by its bytes.
        let many: Vec<String> = (0..3 * RECENT_NAMES).map(|i| format!("n{i}")).collect();
        for round in 0..2 {
            for text in &many {
                assert_eq!(&*facts.name(text.as_bytes()), text, "round {round}");
            }
        }
        assert!(Rc::ptr_eq(&facts.name(b"count"), &first));
    }

    /// More functions than Lua 5.1 and LuaJIT let one C call hold on the stack: every one is
    /// read, with its cell's value, across the rounds' boundaries.
    #[test]
    fn a_table_of_ten_thousand_functions_is_read_whole() {
        let lua = Lua::new();
        let table: Table = lua
            .load(
                "local t = { data = 1 }
                 for i = 1, 10000 do local v = i; t['f' .. i] = function() return v end end
                 t.again = t.f1
                 return t",
            )
            .eval()
            .unwrap();
        let mut facts = Facts::new(&lua, Vec::new());
        let read = facts.read_fields(&lua, &table).unwrap();
        assert_eq!(
            (read.functions, read.upvalues, read.function_fields),
            (10000, 10000, 10001)
        );
        for i in 1..=10000 {
            let function: Function = table.raw_get(format!("f{i}")).unwrap();
            let stored = facts
                .by_function
                .get(function.to_pointer() as usize)
                .unwrap();
            let cell = facts.lend(stored).upvalues[0].cell;
            assert_eq!(facts.cell_value(cell), Value::Integer(i), "f{i}");
        }
        let again = facts.read_fields(&lua, &table).unwrap();
        assert_eq!((again.functions, again.function_fields), (0, 10001));
    }
}

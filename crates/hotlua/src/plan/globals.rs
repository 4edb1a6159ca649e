//! What a new top level wrote into `_G` that the merge must look at.

use mlua::{Function, Lua, Table};

use crate::standard::Chunk;
use crate::Result;

/// What a top level wrote into `_G` (`written`) that the merge must look at: under `keep`,
/// data whose type did not change keeps its live value and needs no look, which spares a
/// top level that sets a million globals a million trips through the planner. Every table,
/// function, new key and type change stays. Under the other policies, everything.
pub(super) fn sift(lua: &Lua, written: &Table, keep: bool) -> Result<Table> {
    if !keep {
        return Ok(written.clone());
    }
    let sift: Function = crate::standard::cached(lua, &SIFT)?;
    let sifted: Table = sift.call((written, lua.globals()))?;
    // A metatable the top level gave `_G` is what it wrote too.
    if let Some(metatable) = crate::raw::metatable(lua, written)? {
        sifted.set_metatable(Some(metatable))?;
    }
    Ok(sifted)
}

/// `sift(written, live)`: see [`sift`].
pub(crate) const SIFT: Chunk = Chunk {
    name: "=hotlua sift",
    source: r#"
local next, rawget, type = next, rawget, type
return function(written, live)
  local out = {}
  for k, v in next, written do
    local kind = type(v)
    if kind == "table" or kind == "function" or type(k) == "table" or type(k) == "function" then
      out[k] = v
    else
      local now = rawget(live, k)
      if now == nil or type(now) ~= kind then out[k] = v end
    end
  end
  return out
end
"#,
};

//! Class libraries of the two kinds that handle inheritance themselves: one that propagates
//! methods into subclasses through the class's `__newindex` (like middleclass), one that copies
//! metamethods into subclasses when they are made (like classic). The libraries are minimal
//! ones written here; the base class is reloaded, the subclass lives in a module that is not.

mod common;

use common::Fixture;

/// Methods declared on a class are copied into every subclass that has not declared its own,
/// through the class's `__newindex`.
const FLATTENING_LIBRARY: &str = r#"
local M = {}
local function propagate(cls, name, f)
  rawset(cls, name, f)
  for sub in pairs(cls.__subclasses) do
    if not sub.__own[name] then propagate(sub, name, f) end
  end
end
local meta = { __newindex = function(cls, name, f) cls.__own[name] = true; propagate(cls, name, f) end }
function M.class(parent)
  local cls = { __own = {}, __subclasses = setmetatable({}, { __mode = "k" }) }
  cls.__index = cls
  if parent then
    parent.__subclasses[cls] = true
    for k, v in pairs(parent) do
      if not tostring(k):find("^__") then rawset(cls, k, v) end
    end
  end
  return setmetatable(cls, meta)
end
return M
"#;

/// Methods are inherited through `__index`; metamethods are copied when a subclass is made.
const COPYING_LIBRARY: &str = r#"
local Object = {}
Object.__index = Object
function Object:extend()
  local cls = {}
  for k, v in pairs(self) do
    if tostring(k):find("__") == 1 then cls[k] = v end
  end
  cls.__index = cls
  cls.super = self
  return setmetatable(cls, self)
end
function Object:__call(...)
  local obj = setmetatable({}, self)
  if obj.new then obj:new(...) end
  return obj
end
return Object
"#;

#[test]
fn method_added_to_a_base_class_reaches_subclasses_through_newindex() {
    let f = Fixture::new();
    f.write("flatclass", FLATTENING_LIBRARY);
    f.write(
        "animal",
        "local Animal = require('flatclass').class()\n\
         function Animal:name() return 'animal' end\nreturn Animal",
    );
    f.write(
        "dog",
        "local Dog = require('flatclass').class(require 'animal')\n\
         function Dog:bark() return 'woof' end\nreturn Dog",
    );
    f.lua::<()>("Dog = require 'dog'; rex = setmetatable({}, Dog)");
    f.write(
        "animal",
        "local Animal = require('flatclass').class()\n\
         function Animal:name() return 'animal 2' end\n\
         function Animal:sound() return 'generic' end\nreturn Animal",
    );
    f.reload_ok("animal");
    assert_eq!(
        f.lua::<(String, String, String)>("return rex:name(), rex:sound(), rex:bark()"),
        ("animal 2".into(), "generic".into(), "woof".into())
    );
    assert_eq!(
        f.lua::<String>("return setmetatable({}, Dog):sound()"),
        "generic"
    );
}

#[test]
fn method_added_through_newindex_is_not_applied_by_check() {
    let f = Fixture::new();
    f.write("flatclass", FLATTENING_LIBRARY);
    f.write(
        "animal",
        "local Animal = require('flatclass').class()\nreturn Animal",
    );
    f.lua::<()>("Animal = require 'animal'; Dog = require('flatclass').class(Animal)");
    f.write(
        "animal",
        "local Animal = require('flatclass').class()\n\
         function Animal:sound() return 'generic' end\nreturn Animal",
    );
    f.reloader
        .check(&["animal"], &hotlua::Options::default())
        .unwrap();
    assert!(f.lua::<bool>("return rawget(Animal, 'sound') == nil and rawget(Dog, 'sound') == nil"));
}

#[test]
fn copying_library_subclasses_see_added_methods_and_edited_metamethods() {
    let f = Fixture::new();
    f.write("object", COPYING_LIBRARY);
    let shape = |version: &str, extra: &str| {
        format!(
            "local Shape = require('object'):extend()\n\
             function Shape:new(n) self.n = n end\n\
             function Shape:__tostring() return 'shape {version}' end\n{extra}\nreturn Shape"
        )
    };
    f.write("shape", &shape("1", ""));
    f.write(
        "square",
        "local Square = require('shape'):extend()\n\
         function Square:area() return self.n * self.n end\nreturn Square",
    );
    f.lua::<()>("Square = require 'square'; sq = Square(3)");
    f.write(
        "shape",
        &shape("2", "function Shape:perimeter() return 4 * self.n end"),
    );
    f.reload_ok("shape");
    assert_eq!(
        f.lua::<(i64, i64, String)>("return sq:perimeter(), sq:area(), tostring(sq)"),
        (12, 9, "shape 2".into())
    );
    assert!(f.lua::<bool>(
        "local later = Square(2) return getmetatable(later) == Square and later:perimeter() == 8"
    ));
}

//! References to old functions held outside the module run the new version (design §Semantics
//! item 7), and nothing else is touched. Engine `walk` switches each reference (counted by
//! place); engine `inplace` leaves every reference alone and gives the old functions the new
//! code (counted as closures upgraded).

mod common;
use common::{inplace, Fixture};
use mlua::{ffi, AnyUserData, Function, Table};

const V1: &str = "local M = {}\nfunction M.f(x) return 'v1:' .. tostring(x) end\n\
                  function M.on_hit() return 'hit1' end\nreturn M";
const V2: &str = "local M = {}\nfunction M.f(x) return 'v2:' .. tostring(x) end\n\
                  function M.on_hit() return 'hit2' end\nreturn M";

/// Checks the report: under `walk`, `walk_counts` (what the walk switched); under `inplace`,
/// that no reference needed switching and both module functions took the new code in place.
fn switched(report: &hotlua::Report, walk_counts: bool) {
    if inplace() {
        assert_eq!(report.engine, "inplace");
        assert_eq!(report.references.total(), 0, "{report:?}");
        assert!(report.closures_upgraded >= 2, "{report:?}");
    } else {
        assert_eq!(report.engine, "walk");
        assert!(walk_counts, "{:?}", report.references);
    }
}

/// Loads V1, runs `setup`, writes V2 and reloads.
fn reloaded(setup: &str) -> (Fixture, hotlua::Report) {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>(&format!("m = require 'm'\n{setup}"));
    f.write("m", V2);
    let report = f.reload_ok("m");
    (f, report)
}

#[test]
fn local_of_another_module_and_its_upvalues() {
    let f = Fixture::new();
    f.write("m", V1);
    f.write(
        "user",
        "local m = require 'm'\nlocal f = m.f\nlocal U = {}\n\
         function U.call() return f('u') end\nreturn U",
    );
    f.lua::<()>("user = require 'user'");
    f.write("m", V2);
    let report = f.reload_ok("m");
    assert_eq!(f.lua::<String>("return user.call()"), "v2:u");
    switched(&report, report.references.upvalues >= 1);
}

#[test]
fn callback_list_and_table_key() {
    let (f, report) =
        reloaded("handlers = { m.on_hit, m.on_hit }; seen = { [m.f] = 'kept value' }");
    assert_eq!(
        f.lua::<(String, String, String)>("return handlers[1](), handlers[2](), seen[m.f]"),
        ("hit2".into(), "hit2".into(), "kept value".into())
    );
    assert!(f.lua::<bool>("local n = 0 for _ in pairs(seen) do n = n + 1 end return n == 1"));
    switched(
        &report,
        report.references.table_keys == 1 && report.references.table_values >= 2,
    );
}

#[test]
fn metatable_fields_of_objects_not_owned_by_the_module() {
    let (f, report) = reloaded(
        "obj = setmetatable({}, { __index = function(_, k) return m.f(k) end, \
           __call = m.f, __tostring = m.on_hit })",
    );
    // __call passes the object first; tostring(obj) then runs the new __tostring.
    assert_eq!(
        f.lua::<(String, String, String)>("return obj(1), tostring(obj), obj.key"),
        ("v2:hit2".into(), "hit2".into(), "v2:key".into())
    );
    switched(&report, report.references.metatables == 2);
}

#[test]
fn registry_refs_and_host_function_handles() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let m: Table = f.lua("return m");
    let handle: Function = m.get("f").unwrap();
    let key = f
        .lua
        .create_registry_value(m.get::<Function>("on_hit").unwrap())
        .unwrap();
    f.lua
        .set_named_registry_value("game.callback", handle.clone())
        .unwrap();
    f.write("m", V2);
    let report = f.reload_ok("m");
    assert_eq!(handle.call::<String>(7).unwrap(), "v2:7");
    let from_ref: Function = f.lua.registry_value(&key).unwrap();
    assert_eq!(from_ref.call::<String>(()).unwrap(), "hit2");
    let named: Function = f.lua.named_registry_value("game.callback").unwrap();
    assert_eq!(named.call::<String>(1).unwrap(), "v2:1");
    switched(&report, report.references.registry >= 1);
}

/// How many user values one userdata holds: any number on 5.4, one on 5.3.
const USER_VALUES: usize = if cfg!(any(feature = "lua54", feature = "lua55")) {
    2
} else {
    1
};

/// A userdata holding `values` as its user values, made through the C API as a C library
/// would.
fn userdata_with_user_values(lua: &mlua::Lua, values: Vec<Function>) -> AnyUserData {
    let count = values.len() as std::ffi::c_int;
    // SAFETY: the closure sees the functions at indices 1..=count; it creates the userdata,
    // moves it to index 1 and pops each function into its user value, last first, so that only
    // the userdata is left for exec_raw to return.
    unsafe {
        lua.exec_raw(mlua::Variadic::from_iter(values), |state| {
            #[cfg(any(feature = "lua54", feature = "lua55"))]
            ffi::lua_newuserdatauv(state, 8, count);
            #[cfg(not(any(feature = "lua54", feature = "lua55")))]
            ffi::lua_newuserdata(state, 8);
            ffi::lua_insert(state, 1);
            for n in (1..=count).rev() {
                #[cfg(any(feature = "lua54", feature = "lua55"))]
                ffi::lua_setiuservalue(state, 1, n);
                #[cfg(not(any(feature = "lua54", feature = "lua55")))]
                {
                    let _ = n;
                    ffi::lua_setuservalue(state, 1);
                }
            }
        })
    }
    .unwrap()
}

fn user_values(lua: &mlua::Lua, userdata: &AnyUserData) -> Vec<Function> {
    // SAFETY: index 1 is the userdata; the pushed user values are returned.
    unsafe {
        lua.exec_raw::<mlua::Variadic<Function>>(userdata, |state| {
            for n in 1..=USER_VALUES as std::ffi::c_int {
                #[cfg(any(feature = "lua54", feature = "lua55"))]
                ffi::lua_getiuservalue(state, 1, n);
                #[cfg(not(any(feature = "lua54", feature = "lua55")))]
                {
                    let _ = n;
                    ffi::lua_getuservalue(state, 1);
                }
            }
            ffi::lua_remove(state, 1);
        })
    }
    .unwrap()
    .to_vec()
}

#[test]
#[cfg_attr(
    any(feature = "lua51", feature = "luajit", feature = "lua52"),
    ignore = "Lua 5.1, 5.2 and LuaJIT user values are tables, which cannot be a function"
)]
fn every_user_value_of_a_userdata() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let m: Table = f.lua("return m");
    let functions = [
        m.get::<Function>("f").unwrap(),
        m.get::<Function>("on_hit").unwrap(),
    ];
    let entity = userdata_with_user_values(&f.lua, functions[..USER_VALUES].to_vec());
    f.write("m", V2);
    let report = f.reload_ok("m");
    let values = user_values(&f.lua, &entity);
    assert_eq!(values[0].call::<String>(0).unwrap(), "v2:0");
    if USER_VALUES > 1 {
        assert_eq!(values[1].call::<String>(()).unwrap(), "hit2");
    }
    switched(&report, report.references.user_values == USER_VALUES);
}

#[test]
fn upvalue_of_a_c_closure() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let old: Function = f.lua("return m.f");
    // `bind` makes a C closure holding the Lua function in an upvalue.
    let bound = old.bind("bound").unwrap();
    drop(old);
    f.lua.globals().set("bound", bound).unwrap();
    f.write("m", V2);
    f.reload_ok("m");
    assert_eq!(f.lua::<String>("return bound()"), "v2:bound");
}

#[test]
fn locals_of_every_frame_of_a_suspended_coroutine() {
    let (f, report) = reloaded(
        "co = coroutine.create(function() \
           local outer = m.f \
           local function inner() local cb = m.on_hit coroutine.yield() return cb() end \
           local r = inner() return r .. ' ' .. outer('co') end) \
         coroutine.resume(co)",
    );
    assert_eq!(
        f.lua::<(bool, String)>("return coroutine.resume(co)"),
        (true, "hit2 v2:co".into())
    );
    switched(&report, report.references.stack_slots >= 2);
}

#[test]
fn coroutine_not_started_yet_gets_the_new_function() {
    let (f, _) = reloaded("co = coroutine.create(m.f)");
    assert_eq!(
        f.lua::<(bool, String)>("return coroutine.resume(co, 'start')"),
        (true, "v2:start".into())
    );
}

#[test]
fn locals_of_the_running_thread_below_the_reload_call() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", V2);
    assert_eq!(
        f.lua::<String>(
            "local held = m.f\nlocal r = require('hotlua').reload('m')\nassert(r)\nreturn held('here')"
        ),
        "v2:here"
    );
}

#[test]
fn frame_running_old_code_finishes_in_old_code() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.long()\n  coroutine.yield('{tag} start')\n  \
             return '{tag} end'\nend\nreturn M"
        )
    };
    f.write("m", &source("old"));
    f.lua::<()>("m = require 'm'; co = coroutine.wrap(m.long); first = co()");
    f.write("m", &source("new"));
    let report = f.reload_ok("m");
    assert_eq!(report.frames_left_old, 1);
    assert_eq!(f.lua::<String>("return co()"), "old end");
    assert_eq!(
        f.lua::<String>("return coroutine.wrap(m.long)()"),
        "new start"
    );
}

#[test]
fn runtime_closures_from_a_factory_are_counted_by_walk_upgraded_by_inplace() {
    let f = Fixture::new();
    let source = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.make(n) return function() return '{tag}' .. n end end\nreturn M"
        )
    };
    f.write("m", &source("old"));
    f.lua::<()>("m = require 'm'; made = { m.make(1), m.make(2), m.make(3) }");
    f.write("m", &source("new"));
    let report = f.reload_ok("m");
    if inplace() {
        assert_eq!(report.closures_left_old, 0);
        assert_eq!(report.closures_upgraded, 4, "m.make and its 3 products");
        assert_eq!(
            f.lua::<String>("return made[1]() .. made[3]() .. m.make(4)()"),
            "new1new3new4"
        );
    } else {
        assert_eq!(report.closures_left_old, 3);
        assert_eq!(
            f.lua::<String>("return made[1]() .. m.make(4)()"),
            "old1new4"
        );
    }
}

#[test]
fn other_modules_c_functions_and_the_standard_library_are_not_switched() {
    let f = Fixture::new();
    f.write("m", V1);
    f.write("other", "return { g = function() return 'other' end }");
    f.lua::<()>(
        "m = require 'm'; other = require 'other'; \
         list = { other.g, print, string.format, m.f }; og = other.g",
    );
    f.write("m", V2);
    f.write(
        "other",
        "return { g = function() return 'other v2 (not reloaded)' end }",
    );
    f.reload_ok("m");
    assert!(f.lua::<bool>(
        "return list[1] == og and list[1]() == 'other' and list[2] == print \
         and list[3] == string.format and list[4] == m.f and m.f(1) == 'v2:1'"
    ));
}

#[test]
fn the_same_heap_is_consistent_after_many_switching_reloads() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>(
        "m = require 'm'; local t = {} for i = 1, 1000 do t[i] = { cb = m.f, [m.on_hit] = i } end big = t",
    );
    for _ in 0..3 {
        f.write("m", V1);
        f.reload_ok("m");
        f.write("m", V2);
        f.reload_ok("m");
    }
    assert!(f.lua::<bool>(
        "for i = 1, 1000 do local e = big[i] if e.cb ~= m.f or e[m.on_hit] ~= i then return false end end \
         return m.f(0) == 'v2:0'"
    ));
}

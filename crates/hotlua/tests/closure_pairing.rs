//! Every closure runs exactly its own new version, or keeps its old code and is counted with
//! the reason (engine `inplace`; elsewhere these scenarios check that `walk` runs).

mod common;
use common::reloaded_inplace as reloaded;

/// An event emitter module `em` the tests' modules register handlers with.
const EMITTER: &str = "local em = { handlers = {} }\n\
    function em.on(name, fn) em.handlers[name] = fn end\n\
    function em:on_method(name, fn) self.handlers[name] = fn end\n\
    function em.fire(name, ...) return em.handlers[name](...) end\nreturn em";

fn handlers(body: &str) -> String {
    format!("local em = require 'em'\nlocal M = {{}}\nfunction M.setup()\n{body}\nend\nreturn M")
}

/// Loads `v1` as module `m` beside the emitter, registers its handlers, reloads `v2`.
fn with_emitter(v1: &str, v2: &str) -> Option<(common::Fixture, hotlua::Report)> {
    let f = common::inplace_fixture()?;
    f.write("em", EMITTER);
    f.write("m", v1);
    f.lua::<()>("em = require 'em'; m = require 'm'; m.setup()");
    f.write("m", v2);
    let report = f.reload_ok("m");
    assert_eq!(report.engine, "inplace");
    Some((f, report))
}

#[test]
fn a_handler_never_runs_another_handlers_code() {
    let Some((f, report)) = with_emitter(
        &handlers("em.on('open', function(who) return 'greet ' .. who end)"),
        &handlers("em.on('close', function(who) return 'goodbye ' .. who end)"),
    ) else {
        return;
    };
    // The handler registered for "open" keeps its own (old) code.
    assert_eq!(
        f.lua::<String>("return em.fire('open', 'ann')"),
        "greet ann"
    );
    assert_eq!(report.closures_left_old, 1, "{report:?}");
    assert_eq!(report.closures_left_old_why.unpaired_prototype, 1);
}

#[test]
fn sibling_callbacks_passed_through_one_call_each_take_their_own_edit() {
    let v = |tag: &str| {
        handlers(&format!(
            "em:on_method('open', function(who) return 'open {tag} ' .. who end)\n\
             em:on_method('close', function(who) return 'close {tag} ' .. who end)\n\
             em.on('tick', function() return 'tick {tag}' end)"
        ))
    };
    let Some((f, report)) = with_emitter(&v("v1"), &v("v2")) else {
        return;
    };
    assert_eq!(
        f.lua::<(String, String, String)>(
            "return em.fire('open', 'a'), em.fire('close', 'b'), em.fire('tick')"
        ),
        ("open v2 a".into(), "close v2 b".into(), "tick v2".into())
    );
    assert_eq!(report.closures_left_old, 0, "{report:?}");
}

#[test]
fn siblings_told_apart_by_their_parameters() {
    let v = |tag: &str| {
        format!(
            "local M = {{}}\nfunction M.make()\n\
             return {{ function(a) return 'a{tag}' .. a end, function(b) return 'b{tag}' .. b end }}\n\
             end\nreturn M"
        )
    };
    // The new file swaps them: their parameters still tell them apart.
    let v2 = "local M = {}\nfunction M.make()\n\
              return { function(b) return 'b2' .. b end, function(a) return 'a2' .. a end }\n\
              end\nreturn M";
    let Some((f, report)) = reloaded(&v("1"), "list = m.make()", v2) else {
        return;
    };
    assert_eq!(
        f.lua::<String>("return list[1]('x') .. list[2]('y')"),
        "a2xb2y"
    );
    assert_eq!(report.closures_left_old, 0, "{report:?}");
}

#[test]
fn a_per_call_local_hoisted_to_module_level_binds_the_live_module_local() {
    let v1 = "local M = {}\nlocal count = 100\n\
              function M.make() local count = 0 return function() count = count + 1 return count end end\n\
              function M.total() return count end\nreturn M";
    // v2: the closures share the module counter.
    let v2 = "local M = {}\nlocal count = 100\n\
              function M.make() return function() count = count + 1 return count end end\n\
              function M.total() return count end\nreturn M";
    let Some((f, report)) = reloaded(v1, "c = m.make(); c(); c()", v2) else {
        return;
    };
    assert_eq!(f.lua::<(i64, i64)>("return c(), m.total()"), (101, 101));
    assert_eq!(report.closures_left_old, 0, "{report:?}");
}

#[test]
fn a_module_local_shadowed_by_a_per_call_one_keeps_the_old_code() {
    let v1 = "local M = {}\nlocal count = 0\n\
              function M.make() return function() count = count + 1 return count end end\n\
              function M.total() return count end\nreturn M";
    // v2: each closure would count on its own, in a variable of a call that returned.
    let v2 = "local M = {}\nlocal count = 0\n\
              function M.make() local count = 10 return function() count = count + 1 return count * 2 end end\n\
              function M.total() return count end\nreturn M";
    let Some((f, report)) = reloaded(v1, "c = m.make(); c(); c()", v2) else {
        return;
    };
    // Old code, on the module counter it always used.
    assert_eq!(f.lua::<(i64, i64)>("return c(), m.total()"), (3, 3));
    assert_eq!(
        report.closures_left_old_why.upvalue_scope_changed, 1,
        "{report:?}"
    );
}

#[test]
fn adding_a_print_to_a_callback_takes_effect() {
    let v1 = handlers("local n = 0\nem.on('hit', function(x) n = n + x return n end)");
    // The new version reads globals (`_ENV`), which the closure was not allocated with.
    let v2 = handlers(
        "local n = 0\nem.on('hit', function(x) n = n + x; seen = (seen or 0) + 1 return n * 10 end)",
    );
    let Some((f, report)) = with_emitter(&v1, &v2) else {
        return;
    };
    assert_eq!(
        f.lua::<(i64, i64)>("return em.fire('hit', 2), seen"),
        (20, 1)
    );
    assert_eq!(report.closures_left_old, 0, "{report:?}");
    assert!(report.closures_upgraded >= 1, "{report:?}");
}

/// Module `m` whose `make(n)` holds `body`.
fn maker(body: &str) -> String {
    format!("local M = {{}}\nfunction M.make(n) {body} end\nreturn M")
}

/// `get = m.make(5)`, then a reload that leaves `get` old: its new version captures `scale`,
/// a local of a call that already returned, which cannot be known.
fn left_old_by_an_unknowable_local() -> Option<common::Fixture> {
    let (f, report) = reloaded(
        &maker("return function() return n end"),
        "get = m.make(5)",
        &maker("local scale = 2 return function() return n * scale end"),
    )?;
    assert_eq!(
        report.closures_left_old_why.unknown_upvalue, 1,
        "{report:?}"
    );
    assert_eq!(f.lua::<i64>("return get()"), 5);
    Some(f)
}

#[test]
fn a_closure_left_old_is_tried_again_by_the_next_reload() {
    let Some(f) = left_old_by_an_unknowable_local() else {
        return;
    };
    // v3 needs nothing unknown: the closure takes it.
    f.write("m", &maker("return function() return n * 3 end"));
    let report = f.reload_ok("m");
    assert_eq!(f.lua::<i64>("return get()"), 15);
    assert_eq!(report.closures_left_old, 0, "{report:?}");
}

#[test]
fn a_closure_left_old_is_counted_by_every_later_report() {
    let Some((f, report)) = reloaded(
        "local M = {}\nfunction M.make() return function() return 'made' end end\n\
         function M.f() return 1 end\nreturn M",
        "get = m.make()",
        // `make` is gone: it stays in place, and it and its closure keep their old code.
        "local M = {}\nfunction M.f() return 2 end\nreturn M",
    ) else {
        return;
    };
    assert_eq!(
        report.closures_left_old_why.unpaired_prototype, 2,
        "{report:?}"
    );
    f.write("m", "local M = {}\nfunction M.f() return 3 end\nreturn M");
    let report = f.reload_ok("m");
    assert_eq!(report.closures_left_old, 2, "{report:?}");
    // Once the program drops the closure, only `make` is left.
    f.lua::<()>("get = nil; collectgarbage(); collectgarbage()");
    let report = f.reload_ok("m");
    assert_eq!(report.closures_left_old, 1, "{report:?}");
    assert_eq!(
        f.lua::<(i64, String)>("return m.f(), m.make()()"),
        (3, "made".into())
    );
}

#[test]
fn a_closure_an_earlier_reload_left_old_is_counted_when_it_cannot_be_tried() {
    let Some(f) = left_old_by_an_unknowable_local() else {
        return;
    };
    // v3 renames `make`: what the closure would have become has no counterpart.
    f.write(
        "m",
        "local M = {}\nfunction M.build(n) return function() return n end end\nreturn M",
    );
    let report = f.reload_ok("m");
    assert_eq!(report.closures_left_old_why.earlier_reload, 1, "{report:?}");
    assert_eq!(f.lua::<i64>("return get()"), 5);
}

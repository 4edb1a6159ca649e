//! Hosts that load modules their own way: a searcher that names its chunks differently from
//! Lua's file searcher (LÖVE's `love.filesystem` loader names them `@rules.lua`, relative to
//! the game's folder).

mod common;

use common::Fixture;

#[test]
fn module_from_a_host_searcher_with_its_own_chunk_names_reloads() {
    let fixture = Fixture::new();
    fixture.write(
        "rules",
        "local bounces = 0\nlocal M = {}\nfunction M.hit() bounces = bounces + 1 return 'v1', bounces end\nreturn M",
    );
    // Like LÖVE: a searcher before Lua's own that loads the same file under a short name.
    let searchers = if cfg!(any(feature = "lua51", feature = "luajit")) {
        "package.loaders"
    } else {
        "package.searchers"
    };
    fixture.lua::<()>(&format!(
        r#"
        local dir = {dir:?}
        table.insert({searchers}, 2, function(name)
          local f = io.open(dir .. "/" .. name .. ".lua")
          if not f then return "\n\tno file in the host's folder" end
          local text = f:read("*a")
          f:close()
          return assert((loadstring or load)(text, "@" .. name .. ".lua"))
        end)
        "#,
        dir = fixture.dir.display().to_string()
    ));
    let (version, hits): (String, i64) = fixture.lua("return require('rules').hit()");
    assert_eq!((version.as_str(), hits), ("v1", 1));

    fixture.write(
        "rules",
        "local bounces = 0\nlocal M = {}\nfunction M.hit() bounces = bounces + 1 return 'v2', bounces end\nreturn M",
    );
    let report = fixture.reload_ok("rules");
    assert_eq!(report.functions_replaced, ["rules.hit"]);
    let (version, hits): (String, i64) = fixture.lua("return require('rules').hit()");
    assert_eq!((version.as_str(), hits), ("v2", 2));
}

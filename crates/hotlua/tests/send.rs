//! Rust hosts: `hotlua::Error` goes into `anyhow` and `Box<dyn Error + Send + Sync>`, and with
//! the `send` feature (mlua's `send`) a Lua state and its reloader move between threads.

mod common;

use common::Fixture;

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn error_is_send_sync_static() {
    assert_send_sync::<hotlua::Error>();
}

#[test]
fn error_boxes_as_send_sync() {
    let fixture = Fixture::new();
    fixture.write("broken", "return {");
    let boxed = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        fixture
            .reloader
            .reload(&["broken"], &hotlua::Options::default())?;
        Ok(())
    };
    let error = boxed().unwrap_err();
    assert!(error.to_string().contains("broken"), "{error}");
    // And back: the concrete error is still there to match on.
    let error = error.downcast::<hotlua::Error>().unwrap();
    assert_eq!(error.module(), Some("broken"));
}

#[test]
fn lua_failures_keep_lua_text() {
    let lua = mlua::Lua::new();
    let error: hotlua::Error = lua.load("error('boom', 0)").exec().unwrap_err().into();
    assert!(
        matches!(&error, hotlua::Error::Lua(text) if text == "boom"),
        "{error:?}"
    );
}

#[cfg(feature = "send")]
#[test]
fn reloader_moves_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<hotlua::Reloader>();
    assert_send::<mlua::Lua>();

    let fixture = Fixture::new();
    fixture.write(
        "counter",
        "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 1 return n end\nreturn M",
    );
    assert_eq!(fixture.lua::<i64>("return require('counter').bump()"), 1);
    fixture.write(
        "counter",
        "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 10 return n end\nreturn M",
    );
    let reloader = fixture.reloader.clone();
    let lua = fixture.lua.clone();
    let bumped = std::thread::spawn(move || {
        reloader
            .reload(&["counter"], &hotlua::Options::default())
            .unwrap();
        lua.load("return require('counter').bump()")
            .eval::<i64>()
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(bumped, 11);
}

//! `package.path` and `package.cpath` as the system's `lua5.4` sets them: Debian's folder list
//! (`/usr/local`, then `/usr/share/lua` and the multiarch C folder where apt installs Lua
//! libraries, then `./`), replaced or extended by `LUA_PATH_5_4` / `LUA_PATH` and
//! `LUA_CPATH_5_4` / `LUA_CPATH` as `loadlib.c`'s `setpath` does (`;;` stands for the
//! default), unless `-E`.

use std::ffi::OsString;

use mlua::{Lua, Table};

use crate::bytes::os_bytes;

/// Sets `package.path` and `package.cpath` of `lua`; `version` is `5.4` for Lua 5.4.
pub fn set(lua: &Lua, version: &str, ignore_env: bool) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let var_suffix = version.replace('.', "_");
    for (field, var, default) in [
        ("path", "LUA_PATH", default_path(version)),
        ("cpath", "LUA_CPATH", default_cpath(version)),
    ] {
        let env = if ignore_env {
            None
        } else {
            std::env::var_os(format!("{var}_{var_suffix}")).or_else(|| std::env::var_os(var))
        };
        let value = with_default(env, default.as_bytes());
        package.set(field, lua.create_string(value)?)?;
    }
    Ok(())
}

/// The search path for Lua files of a system Lua `version`, as Debian's `lua5.4` has it.
fn default_path(version: &str) -> String {
    let mut path = String::new();
    for dir in [
        format!("/usr/local/share/lua/{version}/"),
        format!("/usr/local/lib/lua/{version}/"),
        format!("/usr/share/lua/{version}/"),
        "./".to_owned(),
    ] {
        path.push_str(&format!("{dir}?.lua;{dir}?/init.lua;"));
    }
    path.pop();
    path
}

/// The search path for C libraries, as Debian's `lua5.4` has it: the multiarch folder
/// (`/usr/lib/x86_64-linux-gnu/lua/5.4`) comes from the target the binary is built for.
fn default_cpath(version: &str) -> String {
    let mut dirs = vec![format!("/usr/local/lib/lua/{version}/?.so")];
    if let Some(multiarch) = option_env!("HOTLUA_MULTIARCH") {
        dirs.push(format!("/usr/lib/{multiarch}/lua/{version}/?.so"));
    }
    dirs.push(format!("/usr/lib/lua/{version}/?.so"));
    dirs.push(format!("/usr/local/lib/lua/{version}/loadall.so"));
    dirs.push("./?.so".to_owned());
    dirs.join(";")
}

/// `setpath`: the variable as it is, with its first `;;` replaced by `;DEFAULT;` (no `;` at
/// an end), or the default when the variable is unset.
fn with_default(env: Option<OsString>, default: &[u8]) -> Vec<u8> {
    let Some(env) = env else {
        return default.to_vec();
    };
    let env = os_bytes(&env);
    let Some(at) = env.windows(2).position(|pair| pair == b";;") else {
        return env.into_owned();
    };
    let (prefix, suffix) = (&env[..at], &env[at + 2..]);
    let mut path = Vec::with_capacity(env.len() + default.len());
    if !prefix.is_empty() {
        path.extend_from_slice(prefix);
        path.push(b';');
    }
    path.extend_from_slice(default);
    if !suffix.is_empty() {
        path.push(b';');
        path.extend_from_slice(suffix);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(env: Option<&str>) -> String {
        String::from_utf8(with_default(env.map(OsString::from), b"D")).unwrap()
    }

    #[test]
    fn double_semicolon_is_the_default() {
        assert_eq!(expand(None), "D");
        assert_eq!(expand(Some("a;b")), "a;b");
        assert_eq!(expand(Some(";;")), "D");
        assert_eq!(expand(Some("a;;")), "a;D");
        assert_eq!(expand(Some(";;b")), "D;b");
        assert_eq!(expand(Some("a;;b;;c")), "a;D;b;;c");
        assert_eq!(expand(Some("")), "");
    }

    #[test]
    fn defaults_are_debians() {
        assert_eq!(
            default_path("5.4"),
            "/usr/local/share/lua/5.4/?.lua;/usr/local/share/lua/5.4/?/init.lua;\
             /usr/local/lib/lua/5.4/?.lua;/usr/local/lib/lua/5.4/?/init.lua;\
             /usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;./?.lua;./?/init.lua"
        );
        assert!(default_cpath("5.4").starts_with("/usr/local/lib/lua/5.4/?.so;"));
        assert!(default_cpath("5.4").ends_with(";/usr/local/lib/lua/5.4/loadall.so;./?.so"));
    }
}

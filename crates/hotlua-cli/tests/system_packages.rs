//! The helper that decides whether a test needing a system package runs (`common::system`):
//! an absent package skips the test, unless `CI` is set, where it fails it.

mod common;

use common::system::{missing_under, SystemPackage};

const ABSENT: SystemPackage = SystemPackage::program("no-such-package", "no-such-program");
const PRESENT: SystemPackage = SystemPackage::program("dash", "sh");
const ABSENT_LUA_MODULE: SystemPackage =
    SystemPackage::lua_module("no-such-rock", "no_such_module");

#[test]
fn an_absent_package_skips_the_test_outside_ci() {
    assert!(missing_under(&[ABSENT], false));
    assert!(missing_under(&[PRESENT, ABSENT], false));
    assert!(missing_under(&[ABSENT_LUA_MODULE], false));
}

#[test]
fn installed_packages_run_the_test_in_ci_and_out() {
    assert!(!missing_under(&[PRESENT], false));
    assert!(!missing_under(&[PRESENT], true));
    assert!(!missing_under(&[], true));
}

#[test]
#[should_panic(
    expected = "`no-such-program` is not installed (Debian: apt-get install no-such-package) \
                and CI is set"
)]
fn an_absent_package_fails_the_test_in_ci() {
    missing_under(&[PRESENT, ABSENT], true);
}

#[test]
#[should_panic(
    expected = "Lua module `no_such_module` is not installed (Debian: apt-get install \
                no-such-rock) and CI is set"
)]
fn an_absent_lua_module_fails_the_test_in_ci() {
    missing_under(&[ABSENT_LUA_MODULE], true);
}

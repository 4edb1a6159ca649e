//! The helper that decides whether a test needing a system package runs (`common::system`):
//! an absent package skips the test, unless `CI` is set, where it fails it.

mod common;

use common::system::{missing_under, SystemPackage};

const ABSENT: SystemPackage =
    SystemPackage::program("hotlua-test-absent-package", "hotlua-test-absent-program");
const PRESENT: SystemPackage = SystemPackage::program("dash", "sh");
const ABSENT_LUA_MODULE: SystemPackage =
    SystemPackage::lua_module("hotlua-test-absent-rock", "hotlua_test_absent_module");

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
    expected = "`hotlua-test-absent-program` is not installed (Debian: apt-get install \
                           hotlua-test-absent-package) and CI is set"
)]
fn an_absent_package_fails_the_test_in_ci() {
    missing_under(&[PRESENT, ABSENT], true);
}

#[test]
#[should_panic(
    expected = "Lua module `hotlua_test_absent_module` is not installed (Debian: \
                           apt-get install hotlua-test-absent-rock) and CI is set"
)]
fn an_absent_lua_module_fails_the_test_in_ci() {
    missing_under(&[ABSENT_LUA_MODULE], true);
}

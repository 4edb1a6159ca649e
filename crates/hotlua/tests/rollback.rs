//! `Reloader::rollback` / `hotlua.rollback`, the sources kept for it, and the attempts an
//! audit log records.

mod common;

use std::sync::{Arc, Mutex};

use common::Fixture;
use hotlua::{sha256_hex, Options, Trigger};

const V1: &str = "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 1 return n end\nreturn M\n";
const V2: &str = "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 10 return n end\nreturn M\n";

#[test]
fn rollback_reinstates_the_previous_source_and_keeps_state() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'; held = m.bump; m.bump()");
    assert_eq!(f.reloader.sources()[0].sha256, sha256_hex(V1.as_bytes()));

    f.write("m", V2);
    let report = f.reload_ok("m");
    assert_eq!(
        report.sources[0].old_sha256,
        Some(sha256_hex(V1.as_bytes()))
    );
    assert_eq!(
        report.sources[0].new_sha256,
        Some(sha256_hex(V2.as_bytes()))
    );
    assert!(!report.rolled_back);
    assert_eq!(f.lua::<i64>("return m.bump()"), 11);

    // The file still holds V2: the rollback takes V1 from memory.
    let report = f.reloader.rollback("m", &Options::default()).unwrap();
    assert!(report.rolled_back && report.applied);
    assert_eq!(
        report.sources[0].new_sha256,
        Some(sha256_hex(V1.as_bytes()))
    );
    assert!(
        report.summary().starts_with("rolled back m in"),
        "{}",
        report.summary()
    );
    // State kept (n == 11), old code back, and the reference held elsewhere switched.
    assert_eq!(f.lua::<i64>("return m.bump()"), 12);
    assert_eq!(f.lua::<i64>("return held()"), 13);
    let source = &f.reloader.sources()[0];
    assert_eq!(source.sha256, sha256_hex(V1.as_bytes()));
    assert_eq!(source.previous_sha256, Some(sha256_hex(V2.as_bytes())));

    // Rolling back again goes forward to V2, through the Lua API this time.
    assert!(f.lua::<bool>(
        "local r = require('hotlua').rollback('m') return r.rolled_back and m.bump() == 23"
    ));
}

#[test]
fn rollback_without_a_previous_version_is_refused() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    let error = f.reloader.rollback("m", &Options::default()).unwrap_err();
    assert!(error.to_string().contains("not been reloaded"), "{error}");
    let error = f
        .reloader
        .rollback("nope", &Options::default())
        .unwrap_err();
    assert!(error.to_string().contains("not known"), "{error}");
    let (value, message): (Option<bool>, String) = f.lua("return require('hotlua').rollback('m')");
    assert_eq!(value, None);
    assert!(message.contains("cannot roll back 'm'"), "{message}");
}

#[test]
fn a_failed_reload_keeps_the_previous_version() {
    let f = Fixture::new();
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", V2);
    f.reload_ok("m");
    f.write("m", "local M = {}\nfunction M.bump( return M\n");
    assert!(f.reload("m").is_err());
    f.reloader.rollback("m", &Options::default()).unwrap();
    assert_eq!(f.reloader.sources()[0].sha256, sha256_hex(V1.as_bytes()));
}

#[test]
fn changed_modules_compares_files_with_the_live_source() {
    let f = Fixture::new();
    f.write("m", V1);
    f.write("other", "return {}");
    f.lua::<()>("m = require 'm'; require 'other'");
    assert!(f.reloader.changed_modules().is_empty());
    f.write("m", V2);
    assert_eq!(f.reloader.changed_modules(), ["m"]);
    f.reload_ok("m");
    assert!(f.reloader.changed_modules().is_empty());
}

#[test]
fn every_reload_and_rollback_attempt_is_recorded_with_its_trigger() {
    let f = Fixture::new();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let sink = attempts.clone();
    f.reloader
        .on_attempt(move |attempt| sink.lock().unwrap().push(attempt.clone()));
    f.write("m", V1);
    f.lua::<()>("m = require 'm'");
    f.write("m", V2);
    f.lua::<()>("require('hotlua').reload('m')");
    f.write("m", "return (");
    let peer = Trigger::Control {
        peer: "unix".into(),
    };
    assert!(f
        .reloader
        .with_trigger(peer, |r| r.reload(&["m"], &Options::default()))
        .is_err());
    f.reloader
        .with_trigger(Trigger::Signal, |r| r.rollback("m", &Options::default()))
        .unwrap();
    f.reloader.check(&["m"], &Options::default()).unwrap_err();

    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts.len(), 3, "checks are not attempts: {attempts:?}");
    let (v1, v2) = (sha256_hex(V1.as_bytes()), sha256_hex(V2.as_bytes()));
    let first = &attempts[0];
    assert_eq!(
        (first.trigger, first.action, first.result),
        ("api", "reload", "ok")
    );
    assert_eq!(first.modules[0].old_sha256.as_ref(), Some(&v1));
    assert_eq!(first.modules[0].new_sha256.as_ref(), Some(&v2));
    let failed = &attempts[1];
    assert_eq!((failed.trigger, failed.result), ("control", "failed"));
    assert_eq!(failed.peer.as_deref(), Some("unix"));
    assert_eq!(failed.modules[0].new_sha256, Some(sha256_hex(b"return (")));
    assert!(failed.error.as_ref().unwrap().contains("failed to load"));
    let rollback = &attempts[2];
    assert_eq!((rollback.trigger, rollback.action), ("signal", "rollback"));
    assert_eq!(rollback.modules[0].new_sha256.as_ref(), Some(&v1));
    let json: serde_json::Value = serde_json::from_str(&rollback.to_json()).unwrap();
    assert_eq!(json["modules"][0]["old_sha256"], serde_json::json!(v2));
    assert!(json["time"].as_f64().unwrap() > 1.6e9);
}

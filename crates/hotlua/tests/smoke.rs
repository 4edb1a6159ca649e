mod common;
use common::Fixture;

#[test]
fn smoke() {
    let f = Fixture::new();
    f.write("m", "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 1 return n end\nreturn M");
    f.lua::<()>("m = require 'm'; m.bump(); old = m");
    f.write("m", "local n = 0\nlocal M = {}\nfunction M.bump() n = n + 10 return n end\nfunction M.get() return n end\nreturn M");
    let report = f.reload_ok("m");
    println!("{report:#?}");
    assert_eq!(f.lua::<i64>("assert(require'm' == old); return m.bump()"), 11);
    assert_eq!(f.lua::<i64>("return m.get()"), 11);
}

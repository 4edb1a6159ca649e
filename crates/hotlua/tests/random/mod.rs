//! Random module pairs for `random_modules.rs`: the generator (`model`), their Lua text
//! (`lua`), and what a successful reload must leave (`expect`).

pub mod expect;
pub mod lua;
pub mod model;

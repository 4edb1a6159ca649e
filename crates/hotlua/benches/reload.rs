//! Reload cost, as ratios measured in this one process (`cargo bench -p hotlua`).
//!
//! - **heap**: a module of 50 functions plus H live objects; reload time ÷ one full
//!   `collectgarbage("collect")` of the same heap, and the peak extra memory during the reload
//!   ÷ the live heap.
//! - **module size**: one module of F functions sharing locals and a state table, every body
//!   changed; reload time ÷ compiling and running that file once.
//!
//! - **globals**: a 3-line module reloaded while a table of N entries sits in a global, and
//!   while it sits in a local of the host: staging copies `_G`'s keys, never that table, so the
//!   two reloads cost the same.
//! - **top level**: a module whose top level creates G new globals; reload time ÷ running the
//!   same file once with lua's own `load`.
//! - **data module**: a module file of R records (a table of tables, 70 bytes a record) and
//!   one function, reloaded unchanged; reload time ÷ compiling and running the same file once
//!   with lua's own `load`.
//!
//! Every figure is the median of several runs. `HOTLUA_BENCH_QUICK=1` runs only the small
//! sizes (a smoke test of the benchmark itself); `HOTLUA_BENCH_ONLY=heap`, `=module`,
//! `=globals` (with the top level) or `=data` runs one workload (for profiling).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hotlua::report::Timings;
use hotlua::{Engine, Options, Reloader};
use mlua::Lua;

/// Counts the bytes the process holds, Lua's heap included (mlua allocates through Rust's
/// global allocator), to find the peak during a reload.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(held, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let held = HELD.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                + (new_size - layout.size());
            PEAK.fetch_max(held, Ordering::Relaxed);
        } else {
            HELD.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RUNS: usize = 5;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// The median over `RUNS` runs of the milliseconds `timed` takes, each given what an untimed
/// `setup(run)` prepared.
fn median_ms<T, R>(mut setup: impl FnMut(usize) -> T, mut timed: impl FnMut(T) -> R) -> f64 {
    median(
        (0..RUNS)
            .map(|run| {
                let prepared = setup(run);
                let started = Instant::now();
                drop(timed(prepared));
                ms(started)
            })
            .collect(),
    )
}

/// A report's phase times, as every workload prints them.
fn phases(t: &Timings) -> String {
    format!(
        "phases ms: load {:.2} stage {:.2} plan {:.2} apply {:.2} switch {:.2}",
        t.load_ms, t.stage_ms, t.plan_ms, t.apply_ms, t.switch_ms
    )
}

struct Workspace {
    dir: std::path::PathBuf,
    lua: Lua,
    reloader: Reloader,
}

impl Workspace {
    fn new(tag: &str) -> Workspace {
        let dir = std::env::temp_dir().join(format!("hotlua-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lua = Lua::new();
        lua.load(format!(
            "package.path = {:?}",
            format!("{}/?.lua", dir.display())
        ))
        .exec()
        .unwrap();
        let reloader = Reloader::new(&lua).unwrap();
        Workspace { dir, lua, reloader }
    }

    fn write(&self, name: &str, source: &str) {
        std::fs::write(self.dir.join(format!("{name}.lua")), source).unwrap();
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The heap workload's module: 50 functions sharing locals, a class with methods, a closure
/// factory and a coroutine factory. `tag` changes every body.
fn heap_module(tag: u32) -> String {
    let mut source = String::from(
        "local M = {}\nlocal hits, total = 0, 0\nlocal state = { ticks = 0 }\n\
         local Unit = {}\nUnit.__index = Unit\nM.Unit = Unit\n\
         function Unit.new(hp) return setmetatable({ hp = hp, x = 0, y = 0 }, Unit) end\n",
    );
    for i in 0..10 {
        source += &format!(
            "function Unit:method{i}(d) self.hp = self.hp - d - {tag} return self.hp end\n"
        );
    }
    for i in 0..36 {
        source += &format!(
            "function M.f{i}(x) hits = hits + 1 total = total + x + {i} + {tag} return total end\n"
        );
    }
    source += &format!(
        "function M.make(n) return function() state.ticks = state.ticks + n + {tag} return state.ticks end end\n\
         function M.behaviour(unit) local cb = M.f1 while true do coroutine.yield(cb(unit.hp)) end end\n\
         function M.spawn(unit) local co = coroutine.create(M.behaviour) coroutine.resume(co, unit) return co end\n\
         function M.stats() return hits, total, state.ticks + {tag} end\n\
         return M\n"
    );
    source
}

/// Builds H live objects: 1 % suspended coroutines, the rest split between class instances,
/// callback tables holding module functions, and closures from the factory.
const HEAP_SETUP: &str = "
local M = require 'bench_heap'
local H = ...
world = { units = {}, callbacks = {}, closures = {}, tasks = {} }
for i = 1, H do
  local kind = i % 100
  if kind == 0 then
    world.tasks[#world.tasks + 1] = M.spawn(M.Unit.new(i))
  elseif kind % 3 == 0 then
    world.units[#world.units + 1] = M.Unit.new(i)
  elseif kind % 3 == 1 then
    world.callbacks[#world.callbacks + 1] = { on_hit = M.f3, on_tick = M.f7, id = i }
  else
    world.closures[#world.closures + 1] = M.make(i)
  end
end
";

fn full_gc_ms(lua: &Lua) -> f64 {
    median_ms(|_| {}, |_| lua.gc_collect().unwrap())
}

fn heap_workload(objects: usize, engine: Engine, mode: &str) {
    let ws = Workspace::new("heap");
    ws.write("bench_heap", &heap_module(0));
    ws.lua
        .load(format!("collectgarbage('{mode}')"))
        .exec()
        .unwrap();
    ws.lua.load(HEAP_SETUP).call::<()>(objects).unwrap();
    ws.lua.gc_collect().unwrap();
    ws.lua.gc_collect().unwrap();
    let live = ws.lua.used_memory();
    let gc = full_gc_ms(&ws.lua);

    let mut reloads = Vec::new();
    let mut peaks = Vec::new();
    let mut last = None;
    for run in 0..RUNS {
        ws.write("bench_heap", &heap_module(run as u32 + 1));
        ws.lua.gc_collect().unwrap();
        let before = HELD.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let report = ws
            .reloader
            .reload(&["bench_heap"], &Options::with_engine(engine))
            .unwrap();
        reloads.push(ms(started));
        peaks.push((PEAK.load(Ordering::Relaxed) - before) as f64);
        last = Some(report);
    }
    let reload = median(reloads);
    let peak = median(peaks);
    let report = last.unwrap();
    let t = &report.timings;
    println!(
        "heap   {:<7} {:<4} H={objects:<9} live {:>8.1} MiB | full GC {gc:>8.2} ms | reload {reload:>8.2} ms \
         | reload/GC {:>5.2} | peak extra/live {:>5.3} | {} | visited {} switched {} upgraded {} \
         left old {}",
        report.engine,
        &mode[..4],
        live as f64 / (1 << 20) as f64,
        reload / gc,
        peak / live as f64,
        phases(t),
        report.objects_visited,
        report.references.total(),
        report.closures_upgraded,
        report.closures_left_old,
    );
}

/// One module of `functions` functions sharing locals and a state table.
fn sized_module(functions: usize, tag: u32) -> String {
    let mut source =
        String::from("local M = {}\nlocal state = { n = 0 }\nlocal a, b, c = 0, 0, 0\n");
    for i in 0..functions {
        source += &format!(
            "function M.f{i}(x) a = a + x b = b + {i} c = c + {tag} state.n = state.n + 1 return a + b + c end\n"
        );
    }
    source + "return M\n"
}

fn module_workload(functions: usize, engine: Engine) {
    let ws = Workspace::new("size");
    ws.write("bench_size", &sized_module(functions, 0));
    ws.lua.load("bench = require 'bench_size'").exec().unwrap();

    let compile = median_ms(
        |run| sized_module(functions, run as u32 + 1),
        |source| ws.lua.load(&source).call::<mlua::Value>(()).unwrap(),
    );
    let mut last = None;
    let reload = median_ms(
        |run| ws.write("bench_size", &sized_module(functions, run as u32 + 1)),
        |_| {
            last = Some(
                ws.reloader
                    .reload(&["bench_size"], &Options::with_engine(engine))
                    .unwrap(),
            )
        },
    );
    let report = last.unwrap();
    println!(
        "module {:<7} F={functions:<9} compile+run {compile:>8.2} ms | reload {reload:>8.2} ms \
         | reload/compile {:>5.2} | {}",
        report.engine,
        reload / compile,
        phases(&report.timings),
    );
}

/// Reloads a 3-line module while a table of `entries` entries sits in a global (`global`) or
/// only in a host local.
fn globals_workload(entries: usize) {
    let mut times = Vec::new();
    for global in [true, false] {
        let ws = Workspace::new("globals");
        let setup = format!("local t = {{}} for i = 1, {entries} do t[i] = {{ i }} end return t");
        let table: mlua::Table = ws.lua.load(&setup).eval().unwrap();
        if global {
            ws.lua.globals().set("Registry", &table).unwrap();
        }
        ws.write(
            "small",
            "local M = {}\nfunction M.f() return 0 end\nreturn M\n",
        );
        ws.lua.load("small = require 'small'").exec().unwrap();
        let mut copied = 0;
        let reload = median_ms(
            |run| {
                ws.write(
                    "small",
                    &format!("local M = {{}}\nfunction M.f() return {run} end\nreturn M\n"),
                )
            },
            |_| {
                let report = ws.reloader.reload(&["small"], &Options::default()).unwrap();
                copied = report.staging_entries_copied;
            },
        );
        times.push(reload);
        println!(
            "globals N={entries:<9} table in {:<6} | reload {reload:>8.3} ms | staging copied {copied} entries",
            if global { "_G" } else { "a local" },
        );
        drop(table);
    }
    println!(
        "globals N={entries:<9} reload with the table in _G ÷ in a local: {:.2}",
        times[0] / times[1]
    );
}

/// A module whose top level creates `count` new globals, reloaded: reload ÷ one run.
fn top_level_workload(count: usize) {
    let ws = Workspace::new("toplevel");
    let source = |tag: usize| {
        format!(
            "for i = 1, {count} do _G['g' .. i] = i + {tag} end\n\
             local M = {{}}\nfunction M.f() return {tag} end\nreturn M\n"
        )
    };
    ws.write("many", &source(0));
    ws.lua.load("many = require 'many'").exec().unwrap();
    let run = median_ms(
        |tag| source(tag + 1),
        |code| ws.lua.load(&code).call::<mlua::Value>(()).unwrap(),
    );
    let mut last = None;
    let reload = median_ms(
        |tag| ws.write("many", &source(tag + 10)),
        |_| last = Some(ws.reloader.reload(&["many"], &Options::default()).unwrap()),
    );
    println!(
        "toplvl G={count:<9} run {run:>8.2} ms | reload {reload:>8.2} ms | reload/run {:>5.2} | {}",
        reload / run,
        phases(&last.unwrap().timings),
    );
}

/// A module file of `records` records and one function, reloaded unchanged: reload ÷ one run.
fn data_module_workload(records: usize) {
    let ws = Workspace::new("data");
    let mut source = String::from("local M = { items = {\n");
    for i in 0..records {
        source +=
            &format!("  {{ id = {i}, name = 'item{i}', tags = {{ 'a', 'b' }}, w = {i}.5 }},\n");
    }
    source += "} }\nfunction M.count() return #M.items end\nreturn M\n";
    ws.write("records", &source);
    ws.lua.load("records = require 'records'").exec().unwrap();
    let run = median_ms(
        |_| {},
        |_| ws.lua.load(&source).call::<mlua::Value>(()).unwrap(),
    );
    let mut last = None;
    let reload = median_ms(
        |_| {},
        |_| {
            last = Some(
                ws.reloader
                    .reload(&["records"], &Options::default())
                    .unwrap(),
            )
        },
    );
    let report = last.unwrap();
    println!(
        "data   R={records:<9} {:>5.1} MB run {run:>8.2} ms | reload {reload:>8.2} ms | reload/run {:>5.2} \
         | tables merged {} | {}",
        source.len() as f64 / 1e6,
        reload / run,
        report.tables_merged,
        phases(&report.timings),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep it quick then.
    let quick = std::env::var_os("HOTLUA_BENCH_QUICK").is_some()
        || !std::env::args().any(|arg| arg == "--bench");
    let heap_sizes: &[usize] = if quick {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let module_sizes: &[usize] = if quick { &[100] } else { &[100, 1_000, 10_000] };
    let only = std::env::var("HOTLUA_BENCH_ONLY").unwrap_or_default();
    let engines: Vec<Engine> = match std::env::var("HOTLUA_BENCH_ENGINE").ok().as_deref() {
        Some(name) if !name.is_empty() => vec![Engine::from_name(name).expect("inplace or walk")],
        _ if Engine::inplace_available() => vec![Engine::Inplace, Engine::Walk],
        _ => vec![Engine::Walk],
    };
    println!("hotlua reload benchmarks, medians of {RUNS} runs");
    if only.is_empty() || only == "heap" {
        for &objects in heap_sizes {
            for &engine in &engines {
                for mode in ["incremental", "generational"] {
                    heap_workload(objects, engine, mode);
                }
            }
        }
    }
    if only.is_empty() || only == "globals" {
        globals_workload(if quick { 10_000 } else { 2_000_000 });
        top_level_workload(if quick { 10_000 } else { 200_000 });
    }
    if only.is_empty() || only == "data" {
        data_module_workload(if quick { 1_000 } else { 100_000 });
    }
    if only.is_empty() || only == "module" {
        for &functions in module_sizes {
            for &engine in &engines {
                module_workload(functions, engine);
            }
        }
    }
}

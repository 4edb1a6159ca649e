//! A Rust host that owns its game state and runs Lua systems, reloading them as their files
//! change (`hotlua::Reloader::watch` + `poll` once per tick).
//!
//! ```sh
//! cargo run -p hotlua-host-example                 # edit examples/host/systems/*.lua meanwhile
//! cargo run -p hotlua-host-example -- --check      # CI: edits a copy itself and checks
//! ```
//!
//! `--ticks N` stops after N ticks (default: run until Ctrl-C; 60 with `--check`). With
//! `--check` the host copies `systems/` to a temporary folder, runs from there, rewrites
//! `scoring.lua` a third of the way through, and exits non-zero unless the reload happened,
//! the new rule scores, and both the Rust state and the Lua system's local survived.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hotlua::mlua::{self, Function, Lua, Table};
use hotlua::Reloader;

/// The game state: owned by Rust, never by Lua, so a reload cannot touch it.
struct World {
    tick: u64,
    score: i64,
    entities: Vec<Entity>,
}

struct Entity {
    name: &'static str,
    hp: i64,
}

/// The Lua systems, held as mlua handles for the whole run. A reload switches every
/// reference to an old function, registry handles included, so these run the new code.
struct Systems {
    score: Function,
    runs: Function,
    health: Function,
}

impl Systems {
    fn load(lua: &Lua) -> mlua::Result<Systems> {
        let scoring: Table = lua.load("return require 'scoring'").eval()?;
        let health: Table = lua.load("return require 'health'").eval()?;
        Ok(Systems {
            score: scoring.get("run")?,
            runs: scoring.get("runs")?,
            health: health.get("step")?,
        })
    }
}

/// One tick: the Lua systems read a view of the world, Rust applies what they return.
fn tick(lua: &Lua, world: &mut World, systems: &Systems) -> mlua::Result<i64> {
    world.tick += 1;
    for entity in &mut world.entities {
        entity.hp = systems.health.call((entity.hp, world.tick))?;
    }
    let view = lua.create_table()?;
    view.set("tick", world.tick)?;
    let entities = lua.create_table()?;
    for entity in &world.entities {
        let e = lua.create_table()?;
        e.set("name", entity.name)?;
        e.set("hp", entity.hp)?;
        entities.push(e)?;
    }
    view.set("entities", entities)?;
    let points: i64 = systems.score.call(view)?;
    world.score += points;
    Ok(points)
}

struct Args {
    ticks: Option<u64>,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        ticks: None,
        check: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--check" => args.check = true,
            "--ticks" => {
                let n = argv.next().ok_or("--ticks needs a number")?;
                args.ticks = Some(n.parse().map_err(|_| format!("bad --ticks {n}"))?);
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use [--ticks N] [--check]"
                ))
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("host: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systems");
    let dir = if args.check {
        let dir = std::env::temp_dir().join(format!("hotlua-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for name in ["scoring.lua", "health.lua"] {
            std::fs::copy(shipped.join(name), dir.join(name)).map_err(|e| e.to_string())?;
        }
        dir
    } else {
        shipped
    };
    let result = run_in(&dir, args);
    if args.check {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(dir: &Path, args: &Args) -> Result<(), String> {
    let lua = Lua::new();
    let reloader = Reloader::new(&lua).map_err(|e| e.to_string())?;
    reloader.install().map_err(|e| e.to_string())?;
    lua.load(format!(
        "package.path = {:?}",
        format!("{}/?.lua;", dir.display())
    ))
    .exec()
    .map_err(|e| e.to_string())?;
    let systems = Systems::load(&lua).map_err(|e| e.to_string())?;
    reloader
        .watch(&[PathBuf::from(dir)])
        .map_err(|e| e.to_string())?;

    let mut world = World {
        tick: 0,
        score: 0,
        entities: ["knight", "archer", "mage"]
            .into_iter()
            .map(|name| Entity { name, hp: 5 })
            .collect(),
    };
    let ticks = args.ticks.or(args.check.then_some(60));
    let edit_at = ticks.unwrap_or(0) / 3;
    let mut reloaded_at = None;
    let mut edited = false;
    println!("host: running Lua systems from {}", dir.display());
    loop {
        // The safe point: between ticks, no Lua code running. Right after its own edit the
        // check waits (up to 5 s) for the watcher to see it.
        let wait = match (args.check, edited && reloaded_at.is_none()) {
            (true, true) => 5000,
            (true, false) => 10,
            (false, _) => 100,
        };
        match reloader.poll(Duration::from_millis(wait)) {
            Some(Ok(report)) => {
                println!("host: tick {}: {}", world.tick, report.summary());
                reloaded_at.get_or_insert(world.tick);
            }
            Some(Err(error)) => println!("host: tick {}: old code kept: {error}", world.tick),
            None if args.check && edited && reloaded_at.is_none() => {
                return Err("the edit was not reloaded within 5 s".into());
            }
            None => {}
        }
        let points = tick(&lua, &mut world, &systems).map_err(|e| e.to_string())?;
        let runs: u64 = systems.runs.call(()).map_err(|e| e.to_string())?;
        if world.tick.is_multiple_of(10) || args.check {
            println!(
                "tick {:3}: +{points:2} points, score {:4}, scoring ran {runs} times",
                world.tick, world.score
            );
        }
        if args.check {
            check_tick(&world, points, runs, reloaded_at)?;
            if world.tick == edit_at {
                edit_scoring(dir, &world)?;
                edited = true;
            }
        }
        if ticks.is_some_and(|n| world.tick >= n) {
            break;
        }
    }
    if args.check {
        let at = reloaded_at.ok_or("no reload happened")?;
        println!(
            "host: ok: reloaded at tick {at}, score {} over {} ticks",
            world.score, world.tick
        );
    }
    Ok(())
}

/// `--check`: what must hold after each tick.
fn check_tick(
    world: &World,
    points: i64,
    runs: u64,
    reloaded_at: Option<u64>,
) -> Result<(), String> {
    // The Lua system's own local counts every tick, across the reload.
    if runs != world.tick {
        return Err(format!(
            "scoring ran {runs} times in {} ticks: its local was reset",
            world.tick
        ));
    }
    // The held `scoring.run` handle scores with the rule of the file as it is now.
    let alive = world.entities.iter().filter(|e| e.hp > 0).count() as i64;
    let per_entity = if reloaded_at.is_some() { 10 } else { 1 };
    if points != per_entity * alive {
        return Err(format!(
            "tick {}: expected {} points ({alive} entities alive, {per_entity} each), got {points}",
            world.tick,
            per_entity * alive
        ));
    }
    Ok(())
}

/// `--check`: the edit a developer would make, in the temporary copy.
fn edit_scoring(dir: &Path, world: &World) -> Result<(), String> {
    let file = dir.join("scoring.lua");
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let edited = text.replace("  return 1\n", "  return 10\n");
    if edited == text {
        return Err("scoring.lua no longer has `return 1`".into());
    }
    std::fs::write(&file, edited).map_err(|e| e.to_string())?;
    println!("host: tick {}: edited {}", world.tick, file.display());
    Ok(())
}

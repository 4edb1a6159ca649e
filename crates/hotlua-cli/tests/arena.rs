//! The `examples/arena` game server, run through the `hotlua` binary: it runs to completion,
//! and editing `combat.lua` while it runs changes its behaviour and keeps its state.
//!
//! The game is deterministic (fixed random seed) and the edits below change no random draw,
//! so every status line of an edited run must show the same hp, monsters and kills as the
//! unedited run at the same tick: that is the proof that the state was kept. The edits only
//! change `combat.VERSION` (a data field, taken through the "merge3" policy) and make
//! `combat.hit` count every point of damage 1000 times (code, with the local `total_damage`
//! joined), which shows in the damage column.
//!
//! No assertion depends on timing: the tests wait for lines, with a generous deadline.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait for any one expected line before giving up.
const PATIENCE: Duration = Duration::from_secs(90);
/// Ticks of the runs that edit `combat.lua`: 12 s at 10 ticks a second, ample time for an
/// edit made after the first status line (tick 10) to be picked up.
const EDIT_TICKS: u32 = 120;

fn hotlua() -> &'static str {
    env!("CARGO_BIN_EXE_hotlua")
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/arena")
}

/// One status line: `tick 20 | combat v1 | ana 83/100, bo 89/100 | monsters 1 | damage 87 | kills 2`.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    tick: u64,
    version: String,
    players: String,
    monsters: u64,
    damage: u64,
    kills: u64,
}

impl Status {
    fn parse(line: &str) -> Option<Status> {
        let fields: Vec<&str> = line.split(" | ").collect();
        let [tick, version, players, monsters, damage, kills] = fields[..] else {
            return None;
        };
        let status = Status {
            tick: tick.strip_prefix("tick ")?.parse().ok()?,
            version: version.strip_prefix("combat ")?.to_owned(),
            players: players.to_owned(),
            monsters: monsters.strip_prefix("monsters ")?.parse().ok()?,
            damage: damage.strip_prefix("damage ")?.parse().ok()?,
            kills: kills.strip_prefix("kills ")?.parse().ok()?,
        };
        // `ana 83/100, bo 89/100`
        let players_ok = status
            .players
            .split(", ")
            .zip(["ana", "bo"])
            .all(|(p, name)| {
                p.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|hp| hp.split_once('/'))
                    .is_some_and(|(hp, max)| hp.parse::<u32>().is_ok() && max == "100")
            })
            && status.players.split(", ").count() == 2;
        players_ok.then_some(status)
    }

    /// The game state of the line, without what the edits change (version, damage).
    fn state(&self) -> (u64, &str, u64, u64) {
        (self.tick, &self.players, self.monsters, self.kills)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stream {
    Out,
    Err,
}

/// A running `hotlua`, its output lines arriving on a channel. Killed if dropped while running
/// (a failed assertion), so no test leaves a process behind.
struct Running {
    child: Child,
    lines: Receiver<(Stream, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(args: &[&std::ffi::OsStr], ticks: u32) -> Running {
        let mut child = Command::new(hotlua())
            .args(args)
            .env("ARENA_TICKS", ticks.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the hotlua binary");
        let (sender, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (stream, pipe) in [
            (Stream::Out, Box::new(out) as Box<dyn Read + Send>),
            (Stream::Err, Box::new(err)),
        ] {
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if sender.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Reads lines until one of `stream` satisfies `wanted`, and returns it. Panics with all the
    /// output so far if the process ends first or nothing comes for `PATIENCE`.
    fn wait_for(&mut self, stream: Stream, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((from, line)) => {
                    match from {
                        Stream::Out => self.stdout.push(line.clone()),
                        Stream::Err => self.stderr.push(line.clone()),
                    }
                    if from == stream && wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the program ended before {what}"))
                }
            }
        }
    }

    /// Waits for the next status line on stdout.
    fn next_status(&mut self) -> Status {
        let line = self.wait_for(Stream::Out, "a status line", |line| {
            line.starts_with("tick ")
        });
        Status::parse(&line)
            .unwrap_or_else(|| self.fail(&format!("malformed status line {line:?}")))
    }

    /// Reads the rest of the output and the exit status.
    fn finish(mut self) -> Output {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((Stream::Out, line)) => self.stdout.push(line),
                Ok((Stream::Err, line)) => self.stderr.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail("timed out waiting for the program to end")
                }
            }
        }
        let status = self.child.wait().expect("cannot wait for hotlua");
        Output {
            success: status.success(),
            code: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        panic!(
            "{why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.join("\n"),
            self.stderr.join("\n")
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Output {
    success: bool,
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Output {
    fn dump(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }

    fn statuses(&self) -> Vec<Status> {
        self.stdout
            .iter()
            .filter(|line| line.starts_with("tick "))
            .map(|line| {
                Status::parse(line)
                    .unwrap_or_else(|| panic!("malformed status line {line:?}\n{}", self.dump()))
            })
            .collect()
    }

    fn stderr_lines_starting(&self, prefix: &str) -> Vec<&String> {
        self.stderr
            .iter()
            .filter(|line| line.starts_with(prefix))
            .collect()
    }
}

/// A copy of `examples/arena` in a fresh folder, removed when dropped.
struct ArenaCopy {
    dir: PathBuf,
}

impl ArenaCopy {
    fn new(test: &str) -> ArenaCopy {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "hotlua-arena-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["main.lua", "combat.lua"] {
            std::fs::copy(example_dir().join(file), dir.join(file)).unwrap();
        }
        ArenaCopy { dir }
    }

    fn combat(&self) -> PathBuf {
        self.dir.join("combat.lua")
    }

    /// Saves `combat.lua` the way vim does: write a temporary file beside it, then rename it
    /// over the original (a new inode, as with most editors' "safe write").
    fn save_combat(&self, source: &str) {
        let temp = self.dir.join(".combat.lua.swp");
        std::fs::write(&temp, source).unwrap();
        std::fs::rename(&temp, self.combat()).unwrap();
    }

    /// Runs `hotlua run --watch <copy> <copy>/main.lua`.
    fn run_watched(&self, ticks: u32) -> Running {
        let main = self.dir.join("main.lua");
        Running::start(
            &[
                "run".as_ref(),
                "--watch".as_ref(),
                self.dir.as_os_str(),
                main.as_os_str(),
            ],
            ticks,
        )
    }
}

impl Drop for ArenaCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped example, unwatched and unedited: the reference for the edited runs.
fn run_shipped(ticks: u32) -> Running {
    let main = example_dir().join("main.lua");
    Running::start(&["run".as_ref(), main.as_os_str()], ticks)
}

fn replace_once(source: &str, from: &str, to: &str) -> String {
    assert_eq!(
        source.matches(from).count(),
        1,
        "combat.lua should contain {from:?} once"
    );
    source.replacen(from, to, 1)
}

/// combat.lua v2: `VERSION = "v2"`, and `combat.hit` counts damage 1000 times over. No random
/// draw changes, so the fight itself goes on exactly as in v1.
fn combat_v2(v1: &str) -> String {
    let v2 = replace_once(v1, r#"combat.VERSION = "v1""#, r#"combat.VERSION = "v2""#);
    replace_once(
        &v2,
        "total_damage = total_damage + amount\n",
        "total_damage = total_damage + amount * 1000\n",
    )
}

/// Checks an edited run against the reference run: same ticks and the same game state at each
/// one, versions `v1` then `v2`, and damage that went on from its live value, counted by the
/// v2 code (1000 per point) after the reload.
fn assert_same_game_then_v2(edited: &Output, reference: &Output, ticks: u32) {
    let statuses = edited.statuses();
    let expected = reference.statuses();
    let dump = || {
        format!(
            "{}\n=== reference run ===\n{}",
            edited.dump(),
            reference.dump()
        )
    };
    assert_eq!(
        statuses.len(),
        ticks as usize / 10,
        "one status line per second\n{}",
        dump()
    );
    assert_eq!(expected.len(), statuses.len(), "{}", dump());
    for (i, status) in statuses.iter().enumerate() {
        assert_eq!(
            status.tick,
            10 * (i as u64 + 1),
            "tick numbers go on\n{}",
            dump()
        );
        assert_eq!(
            status.state(),
            expected[i].state(),
            "the game state was not kept across the reload\n{}",
            dump()
        );
    }
    let first_v2 = statuses
        .iter()
        .position(|s| s.version == "v2")
        .unwrap_or_else(|| panic!("no status line shows v2\n{}", dump()));
    assert!(
        first_v2 >= 1,
        "the first status line comes before any edit\n{}",
        dump()
    );
    assert!(
        statuses[first_v2..].iter().all(|s| s.version == "v2"),
        "v1 again after v2\n{}",
        dump()
    );
    assert!(
        statuses[first_v2 + 1..].len() >= 2,
        "too few status lines after the reload\n{}",
        dump()
    );
    for i in 0..first_v2 {
        assert_eq!(statuses[i].version, "v1", "{}", dump());
        assert_eq!(
            statuses[i].damage,
            expected[i].damage,
            "v1 damage\n{}",
            dump()
        );
    }
    // The reload happened between the last v1 line and the first v2 line: from there on the
    // total never went back, and each second adds 1000 times what v1 adds.
    assert!(
        statuses[first_v2].damage >= expected[first_v2].damage,
        "the damage total was reset by the reload\n{}",
        dump()
    );
    let mut v2_gain = 0;
    for i in first_v2 + 1..statuses.len() {
        let gained = statuses[i].damage - statuses[i - 1].damage;
        assert_eq!(
            gained,
            1000 * (expected[i].damage - expected[i - 1].damage),
            "the new combat.hit is not the code that ran (tick {})\n{}",
            statuses[i].tick,
            dump()
        );
        v2_gain += gained;
    }
    assert!(
        v2_gain > 0,
        "no damage dealt after the reload: nothing tested\n{}",
        dump()
    );
}

#[test]
fn arena_runs_to_completion() {
    let out = run_shipped(25).finish();
    assert!(out.success, "{}", out.dump());
    assert_eq!(
        out.stdout.first().map(String::as_str),
        Some("arena: combat v1, 25 ticks"),
        "{}",
        out.dump()
    );
    let statuses = out.statuses();
    assert_eq!(
        statuses.iter().map(|s| s.tick).collect::<Vec<_>>(),
        [10, 20],
        "{}",
        out.dump()
    );
    assert!(statuses.iter().all(|s| s.version == "v1"), "{}", out.dump());
    assert!(
        statuses[0].damage > 0,
        "nobody fought in the first second\n{}",
        out.dump()
    );
    assert!(statuses[1].damage >= statuses[0].damage, "{}", out.dump());
    assert!(
        out.stderr_lines_starting("reloaded").is_empty(),
        "{}",
        out.dump()
    );
}

#[test]
fn editing_combat_while_running_changes_behaviour_and_keeps_state() {
    let arena = ArenaCopy::new("edit");
    let v1 = std::fs::read_to_string(arena.combat()).unwrap();
    let reference = run_shipped(EDIT_TICKS);
    let mut running = arena.run_watched(EDIT_TICKS);

    let first = running.next_status();
    assert_eq!(first.version, "v1");
    arena.save_combat(&combat_v2(&v1));
    running.wait_for(Stream::Err, "the reload line", |line| {
        line.starts_with("reloaded combat")
    });

    let out = running.finish();
    let reference = reference.finish();
    assert!(out.success, "{}", out.dump());
    assert!(reference.success, "{}", reference.dump());
    assert_eq!(
        out.stderr_lines_starting("reloaded").len(),
        1,
        "exactly one reload\n{}",
        out.dump()
    );
    assert_eq!(
        out.stderr_lines_starting("reloaded combat").len(),
        1,
        "{}",
        out.dump()
    );
    assert_same_game_then_v2(&out, &reference, EDIT_TICKS);
}

#[test]
fn syntax_error_in_combat_keeps_old_code() {
    let arena = ArenaCopy::new("syntax");
    let v1 = std::fs::read_to_string(arena.combat()).unwrap();
    let reference = run_shipped(EDIT_TICKS);
    let mut running = arena.run_watched(EDIT_TICKS);

    running.next_status();
    let broken = replace_once(&v1, "\nlocal kills = 0\n", "\nlocal kills = = 0\n");
    let broken_line = broken
        .lines()
        .position(|line| line == "local kills = = 0")
        .unwrap()
        + 1;
    arena.save_combat(&broken);
    let failure = running.wait_for(Stream::Err, "the failed reload line", |line| {
        line.contains("failed, old code kept")
    });
    assert!(failure.contains("'combat'"), "names the module: {failure}");
    assert!(
        failure.starts_with("reload of combat failed, old code kept: "),
        "one line in the documented form: {failure}"
    );
    assert!(
        failure.contains(&format!("combat.lua:{broken_line}:")),
        "names the file and line {broken_line}: {failure}"
    );

    // The game goes on with the old code: two more whole seconds of v1.
    for _ in 0..2 {
        let status = running.next_status();
        assert_eq!(status.version, "v1", "{status:?}");
    }

    // A fixed save reloads.
    arena.save_combat(&combat_v2(&v1));
    running.wait_for(Stream::Err, "the reload of the fixed file", |line| {
        line.starts_with("reloaded combat")
    });

    let out = running.finish();
    let reference = reference.finish();
    assert!(out.success, "{}", out.dump());
    assert!(reference.success, "{}", reference.dump());
    let failures: Vec<_> = out
        .stderr
        .iter()
        .filter(|l| l.contains("failed, old code kept"))
        .collect();
    assert_eq!(failures.len(), 1, "one failed reload\n{}", out.dump());
    assert_eq!(
        out.stderr_lines_starting("reloaded").len(),
        1,
        "one reload\n{}",
        out.dump()
    );
    assert_same_game_then_v2(&out, &reference, EDIT_TICKS);
    // Every line before the fixed save was v1 and matched the unedited run, damage included.
    let statuses = out.statuses();
    let expected = reference.statuses();
    let first_v2 = statuses.iter().position(|s| s.version == "v2").unwrap();
    assert!(
        first_v2 >= 3,
        "v1 lines before the failed and after it\n{}",
        out.dump()
    );
    assert_eq!(statuses[..first_v2], expected[..first_v2], "{}", out.dump());
}

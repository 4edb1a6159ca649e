//! One reload from start to finish: stage the new versions, plan, apply, switch, and on any
//! failure put everything back.

use std::time::Instant;

use crate::batch::{GivenSource, NewSource};
use crate::collector::CollectorPause;
use crate::error::quoted;
use crate::load::StagedModule;
use crate::sources::sha256_hex;
use crate::{
    apply, baseline, batch, hooks, load, plan, request, switch, ApplyStep, Error, Options,
    Reloader, Report, Result, SourceChange, DEFAULT_TIMEOUT,
};

impl Reloader {
    pub(crate) fn run(
        &self,
        modules: &[&str],
        options: &Options,
        apply: bool,
        new_source: &NewSource,
    ) -> Result<Report> {
        let started = Instant::now();
        request::check_names(modules)?;
        if let Some(running) = self.shared.running.borrow().as_ref() {
            return Err(Error::Reentrant {
                module: modules[0].to_owned(),
                running: running.clone(),
            });
        }
        *self.shared.running.borrow_mut() = Some(modules.join(", "));
        let result = self.plan_and_apply(modules, options, apply, new_source);
        *self.shared.running.borrow_mut() = None;
        // A top level that filled memory left its garbage behind.
        crate::memory::collect_if_reserve_spent(&self.lua);
        let mut report = result.map_err(|error| match error {
            // Lua failed outside any one module's top level (out of memory while staging).
            Error::Lua(message) => Error::Reload {
                modules: quoted(modules.iter().copied()),
                message,
            },
            other => other,
        })?;
        report.timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        if apply {
            hooks::call_after(&self.lua, &mut report);
        }
        Ok(report)
    }

    fn plan_and_apply(
        &self,
        modules: &[&str],
        options: &Options,
        apply: bool,
        new_source: &NewSource,
    ) -> Result<Report> {
        let policies = self.shared.policies.borrow().clone();
        let policy_of = |name: &str| {
            options
                .data
                .or_else(|| policies.get(name).copied())
                .unwrap_or_default()
        };
        let timeout = options.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let engine = options.engine.unwrap_or(*self.shared.engine.borrow());
        let rolled_back = matches!(new_source, NewSource::Previous(_));
        let given = |name: &str| new_source.given(name, modules[0]);
        let staged = batch::stage_all(&self.lua, modules, &given, timeout, &self.shared.reloading)?;
        let result = (|| {
            // Planning creates many handles; a collection cycle meanwhile would traverse them
            // all again and again. No finalizer may run Lua code (and see a half-done reload)
            // until the references are switched either.
            let _paused = CollectorPause::new(&self.lua);
            let batch = || quoted(modules.iter().copied());
            let build_plan = || {
                let plan = || {
                    plan::Plan::build(
                        &self.lua,
                        &staged,
                        &policy_of,
                        engine.keeps_identity(&self.lua),
                    )
                };
                // Lua 5.2 collects in an emergency only while the collector runs (5.1 and
                // LuaJIT never do), and it is paused here: garbage a failed reload left (a new
                // top level that ran out of memory) can starve the plan. A plan writes
                // nothing, so collect and plan again.
                match plan() {
                    // Lua's own words, which a memory error carries whatever raised it.
                    Err(Error::Lua(message)) if message.ends_with("not enough memory") => {
                        self.lua.gc_collect()?;
                        plan()
                    }
                    planned => planned,
                }
                .map_err(|error| match error {
                    Error::Lua(message) => Error::Plan {
                        modules: batch(),
                        message,
                    },
                    other => other,
                })
            };
            let mut plan = build_plan()?;
            let mut report = std::mem::take(&mut plan.report);
            if apply {
                if hooks::call_before(&self.lua, &report)? {
                    // A hook may have changed the module (its tables, its locals): never apply
                    // a plan made before that. Plan again from the state the hooks left; the
                    // hooks saw the first plan's report.
                    plan = build_plan()?;
                    report = std::mem::take(&mut plan.report);
                }
                let failed = |step, error: mlua::Error| Error::Apply {
                    modules: batch(),
                    step,
                    message: load::lua_error_text(&error),
                };
                let apply_started = Instant::now();
                let baselines =
                    baseline::replace(&self.lua, &plan.baselines, &plan.baseline_copies)
                        .map_err(|error| failed(ApplyStep::Baselines, error))?;
                let undo = match apply::apply(&self.lua, &plan.writes) {
                    Ok(undo) => undo,
                    Err(error) => {
                        baselines.restore(&self.lua);
                        return Err(failed(ApplyStep::Writes, error));
                    }
                };
                report.timings.apply_ms = apply_started.elapsed().as_secs_f64() * 1e3;
                report.applied = true;
                if let Err(error) = switch::switch_references(&self.lua, &plan, &mut report, engine)
                {
                    // A switch is all or nothing: it has put back every reference it changed.
                    undo.undo(&self.lua);
                    baselines.restore(&self.lua);
                    return Err(failed(ApplyStep::Switch, error));
                }
                #[cfg(feature = "luajit")]
                {
                    let flush_started = Instant::now();
                    // The reload is done and stays done: a flush that fails only means that
                    // loops compiled before it may run old code until LuaJIT drops their
                    // traces, which the report's warning says.
                    if let Err(error) = crate::raw::flush_compiled_code(&self.lua) {
                        report.warnings.push(format!(
                            "flushing LuaJIT's compiled code failed ({error}): loops compiled \
                             before the reload may run old code"
                        ));
                    }
                    report.timings.jit_flush_ms = flush_started.elapsed().as_secs_f64() * 1e3;
                    if report.closures_left_old > 0 {
                        report.warnings.push(format!(
                            "{} closures keep their old code; LuaJIT compiles a local their old \
                             code never assigned as a constant, so they may go on seeing its old \
                             value after the new code assigns it",
                            report.closures_left_old
                        ));
                    }
                }
            }
            report.rolled_back = rolled_back && apply;
            for (module, text) in staged.modules.iter().zip(&staged.texts) {
                let old_sha256 = self.shared.sources.live_sha256(&module.name);
                if apply {
                    self.remember_reloaded(module, text.as_ref());
                }
                // Hashed once: remembering the source hashed it (a big file takes a while).
                let new_sha256 = match text {
                    Some(_) if apply => self.shared.sources.live_sha256(&module.name),
                    Some(text) => Some(sha256_hex(&text.bytes)),
                    None => None,
                };
                report.sources.push(SourceChange {
                    module: module.name.clone(),
                    old_sha256,
                    new_sha256,
                });
            }
            Ok(report)
        })();
        if !matches!(result, Ok(Report { applied: true, .. })) {
            staged.roll_back(&self.lua)?;
        }
        result
    }

    /// Records the source `module` now runs: `text`, or for a chunk a host's searcher loaded,
    /// its file as it is now. Kept under the file its chunk names (a host's searcher names
    /// LÖVE's `rules.lua` so), so that a reload from a given source keeps that chunk name.
    fn remember_reloaded(&self, module: &StagedModule, text: Option<&GivenSource>) {
        let file = match module.source.strip_prefix('@') {
            Some(chunk_file) => std::path::PathBuf::from(chunk_file),
            None => module.file.clone(),
        };
        let path = match text {
            Some(text) => text.path.clone(),
            None => crate::sources::absolute(&file),
        };
        let read;
        let bytes = match text {
            Some(text) => &text.bytes,
            None => match crate::source_file::read(&path) {
                Ok(bytes) => {
                    read = bytes;
                    &read
                }
                // Not on disk where its chunk says: nothing to compare or roll back to.
                Err(_) => return,
            },
        };
        self.shared
            .sources
            .reloaded(&module.name, &file, &path, bytes);
    }
}

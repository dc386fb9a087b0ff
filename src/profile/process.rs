//! The profile's `process` section → `ProcessConfig`: the process to watch (pid, name or a
//! command soak starts), the sampling interval, and the memory-leak rule.

use std::time::Duration;

use crate::analysis::leak::LeakRule;
use crate::error::SoakError;
use crate::profile::config::{ProcessConfig, Target, TargetProcess};
use crate::profile::spec::{ProcessSpec, ProfileSpec};

/// Which process to watch: by pid, name or a command soak starts (at most one).
fn target_process(
    p: &ProcessSpec,
    target: &Target,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<TargetProcess, SoakError> {
    let given = [
        p.pid.is_some(),
        p.name.is_some(),
        p.cmd.is_some(),
        p.cgroup.is_some(),
        p.container.is_some(),
        p.metrics.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        return Err(bad(
            "process.pid / process.name / process.cmd / process.cgroup / process.container / process.metrics (--target-pid, --target-name, --target-cmd, --target-cgroup, --target-container, --target-metrics)",
            "give at most one".into(),
        ));
    }
    if let Some(name) = &p.container {
        let path = crate::sampler::cgroup::of_container(name)
            .map_err(|why| bad("process.container (--target-container)", why))?;
        return Ok(TargetProcess::Cgroup(path));
    }
    if let Some(url) = &p.metrics {
        // One scrape now: an endpoint that is down or serves no memory figure is exit 2
        // before any load, not an hour of gaps.
        crate::sampler::scrape::Scraper::open(url, p.metric_names.clone(), p.interval)
            .map_err(|why| bad("process.metrics (--target-metrics)", why))?;
        return Ok(TargetProcess::Metrics {
            url: url.clone(),
            names: p.metric_names.clone(),
        });
    }
    if let Some(path) = &p.cgroup {
        crate::sampler::cgroup::Cgroup::open(path)
            .map_err(|why| bad("process.cgroup (--target-cgroup)", why))?;
        return Ok(TargetProcess::Cgroup(path.clone()));
    }
    let which = match (&p.pid, &p.name, &p.cmd) {
        (Some(pid), _, _) => TargetProcess::Pid(*pid),
        (_, Some(name), _) if !name.trim().is_empty() => {
            TargetProcess::Name(name.trim().to_string())
        }
        (_, _, Some(cmd)) if !cmd.trim().is_empty() => {
            if !matches!(target, Target::Url(_) | Target::Telegram) {
                return Err(bad(
                    "process.cmd (--target-cmd)",
                    "needs the target's URL (--url ws://127.0.0.1:PORT/…) to know when it is up"
                        .into(),
                ));
            }
            TargetProcess::Cmd(cmd.clone())
        }
        (None, Some(_), _) | (None, None, Some(_)) => {
            return Err(bad("process", "an empty name or command".into()));
        }
        (None, None, None) => TargetProcess::None,
    };
    Ok(which)
}

/// The `process` section: which process to watch, how often, and the leak rule.
pub(crate) fn process(
    spec: &ProfileSpec,
    target: &Target,
    bad: &impl Fn(&str, String) -> SoakError,
) -> Result<ProcessConfig, SoakError> {
    let p = &spec.process;
    let target_process = target_process(p, target, bad)?;
    if p.interval < Duration::from_millis(50) {
        return Err(bad(
            "process.interval (--sample-interval)",
            "must be at least 50ms".into(),
        ));
    }
    if !(p.leak_alpha > 0.0 && p.leak_alpha < 0.5) {
        return Err(bad(
            "process.leak_alpha",
            format!("{}: expected a level like 0.01", p.leak_alpha),
        ));
    }
    if p.memory_limit_mb.is_some_and(|mb| mb.is_nan() || mb <= 0.0) {
        return Err(bad(
            "process.memory_limit_mb (--memory-limit)",
            "must be above 0".into(),
        ));
    }
    Ok(ProcessConfig {
        target: target_process,
        interval: p.interval,
        warmup: p.warmup,
        startup_timeout: p.startup_timeout,
        stop_grace: p.stop_grace,
        memory_limit_mb: p.memory_limit_mb,
        rule: LeakRule {
            alpha: p.leak_alpha,
            min_mb_per_hour: p.leak_min_mb_per_hour,
            min_pct_per_hour: p.leak_min_pct_per_hour,
            ..LeakRule::default()
        },
    })
}

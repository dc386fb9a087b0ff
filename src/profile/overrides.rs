//! Command-line flags laid over a profile: a flag that was given wins, one line per flag.

use crate::cli::RunArgs;
use crate::profile::ProfileSpec;

/// Applies every flag present in `args` to `spec`.
pub fn apply(args: &RunArgs, spec: &mut ProfileSpec) {
    if let Some(url) = &args.url {
        spec.target.url = Some(url.clone());
    }
    if let Some(users) = args.users {
        spec.load.users = users;
    }
    if let Some(d) = args.hours.or(args.duration) {
        spec.load.duration = d;
    }
    if let Some(d) = args.ramp_up {
        spec.load.ramp_up = d;
    }
    if let Some(d) = args.ramp_down {
        spec.load.ramp_down = d;
    }
    if let Some(rate) = args.connect_rate {
        spec.load.connect_rate = rate;
    }
    if let Some(model) = args.model {
        spec.session.model = model;
    }
    if let Some(rate) = args.rate {
        spec.session.rate = rate;
    }
    if let Some(d) = args.think {
        spec.session.think = d;
    }
    if let Some(message) = &args.message {
        spec.session.message = message.clone();
        spec.session.messages.clear(); // a message on the command line replaces a scenario
    }
    if let Some(rule) = &args.complete {
        spec.session.complete = rule.clone();
    }
    if let Some(path) = &args.data {
        spec.session.data = Some(path.clone());
    }
    if let Some(d) = args.lifetime {
        spec.session.lifetime = d;
    }
    spec.target.headers.extend(args.headers.iter().cloned());
    spec.target
        .subprotocols
        .extend(args.subprotocols.iter().cloned());
    if args.insecure {
        spec.target.insecure = true;
    }
    if let Some(d) = args.handshake_timeout {
        spec.target.handshake_timeout = d;
    }
    if let Some(pointer) = &args.correlate {
        spec.session.correlate = pointer.clone();
    }
    if let Some(d) = args.reply_timeout {
        spec.session.reply_timeout = d;
    }
    if let Some(n) = args.probes {
        spec.probes.count = n;
    }
    if let Some(message) = &args.probe_message {
        spec.probes.message = message.clone();
    }
    if let Some(d) = args.stall_threshold {
        spec.probes.threshold = d;
    }
    if let Some(pid) = args.target_pid {
        spec.process.pid = Some(pid);
    }
    if let Some(name) = &args.target_name {
        spec.process.name = Some(name.clone());
    }
    if let Some(cmd) = &args.target_cmd {
        spec.process.cmd = Some(cmd.clone());
    }
    if let Some(d) = args.sample_interval {
        spec.process.interval = d;
    }
    if let Some(d) = args.baseline {
        spec.process.baseline = Some(d);
    }
    if let Some(d) = args.cooldown {
        spec.process.cooldown = Some(d);
    }
    if let Some(mb) = args.memory_limit {
        spec.process.memory_limit_mb = Some(mb);
    }
    spec.gates.checks.extend(args.gates.iter().cloned());
    for m in &args.mocks {
        if !spec.mocks.enable.contains(m) {
            spec.mocks.enable.push(m.clone());
        }
    }
    if let Some(d) = args.interval {
        spec.output.interval = d;
    }
    if let Some(dir) = &args.out {
        spec.output.dir = dir.clone();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::units::Rate;

    #[test]
    fn given_flags_win_and_absent_ones_keep_the_profile() {
        let mut spec = ProfileSpec::default();
        spec.load.ramp_up = Duration::from_secs(7);
        spec.session.message = String::from("keep me");
        let args = RunArgs {
            users: Some(100),
            hours: Some(Duration::from_secs(4 * 3600)),
            rate: Some(Rate { per_second: 3.0 }),
            ..RunArgs::default()
        };
        apply(&args, &mut spec);
        assert_eq!(spec.load.users, 100);
        assert_eq!(spec.load.duration, Duration::from_secs(14_400));
        assert_eq!(spec.session.rate.per_second, 3.0);
        assert_eq!(spec.load.ramp_up, Duration::from_secs(7));
        assert_eq!(spec.session.message, "keep me");
    }
}

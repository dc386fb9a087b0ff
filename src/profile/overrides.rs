//! Command-line flags laid over a profile: a flag that was given wins, one line per flag.

use crate::cli::RunArgs;
use crate::profile::ProfileSpec;
use crate::profile::spec::{
    Check, GatesSpec, LoadSpec, ProbesSpec, ProcessSpec, SessionSpec, TargetSpec,
};

/// Applies every flag present in `args` to `spec`.
pub fn apply(args: &RunArgs, spec: &mut ProfileSpec) {
    target(args, &mut spec.target);
    load(args, &mut spec.load);
    session(args, &mut spec.session);
    probes(args, &mut spec.probes);
    process(args, &mut spec.process);
    gates(args, &mut spec.gates);
    for m in &args.mocks {
        if !spec.mocks.enable.contains(m) {
            spec.mocks.enable.push(m.clone());
        }
    }
    put(&mut spec.output.interval, args.interval);
    put(&mut spec.output.dir, args.out.clone());
    put(&mut spec.rooms.size, args.room_size);
    socketio(args, spec);
}

fn socketio(args: &RunArgs, spec: &mut ProfileSpec) {
    put(&mut spec.target.protocol, args.protocol);
    let sio = &mut spec.socketio;
    put(&mut sio.event, args.event.clone());
    put(&mut sio.namespace, args.namespace.clone());
    put(&mut sio.auth, args.auth.clone());
    if let Some(reply) = &args.reply_event {
        sio.reply_event.clone_from(reply);
        sio.ack = false;
    }
}

/// Sets `field` when the flag was given.
fn put<T>(field: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *field = value;
    }
}

fn gates(args: &RunArgs, gates: &mut GatesSpec) {
    gates
        .checks
        .extend(args.gates.iter().cloned().map(Check::Expr));
    gates.defaults &= !args.no_default_gates;
    gates.abort_on_fail |= args.abort_on_fail;
    put(&mut gates.abort_grace, args.abort_grace);
}

fn target(args: &RunArgs, target: &mut TargetSpec) {
    if args.url.is_some() {
        target.url.clone_from(&args.url);
    }
    target.headers.extend(args.headers.iter().cloned());
    target
        .subprotocols
        .extend(args.subprotocols.iter().cloned());
    target.insecure |= args.insecure;
    put(&mut target.handshake_timeout, args.handshake_timeout);
    if let Some(ips) = &args.local_ips {
        target.local_ips.clone_from(ips);
    }
}

fn load(args: &RunArgs, load: &mut LoadSpec) {
    put(&mut load.users, args.users);
    put(&mut load.duration, args.hours.or(args.duration));
    put(&mut load.ramp_up, args.ramp_up);
    put(&mut load.ramp_down, args.ramp_down);
    put(&mut load.connect_rate, args.connect_rate);
}

fn session(args: &RunArgs, session: &mut SessionSpec) {
    put(&mut session.model, args.model);
    put(&mut session.rate, args.rate);
    put(&mut session.think, args.think);
    if let Some(message) = &args.message {
        session.message.clone_from(message);
        session.messages.clear(); // a message on the command line replaces a scenario
    }
    put(&mut session.complete, args.complete.clone());
    if args.data.is_some() {
        session.data.clone_from(&args.data);
    }
    put(&mut session.lifetime, args.lifetime);
    put(&mut session.alternate, args.alternate);
    if !args.push.is_empty() {
        session.push = args.push.clone();
    }
    if !args.on_connect.is_empty() {
        session.on_connect = args
            .on_connect
            .iter()
            .map(|message| crate::profile::spec::StepSpec {
                message: message.clone(),
                ..Default::default()
            })
            .collect();
    }
    put(&mut session.correlate, args.correlate.clone());
    put(&mut session.reply_timeout, args.reply_timeout);
}

fn probes(args: &RunArgs, probes: &mut ProbesSpec) {
    put(&mut probes.count, args.probes);
    put(&mut probes.message, args.probe_message.clone());
    put(&mut probes.event, args.probe_event.clone());
    put(&mut probes.threshold, args.stall_threshold);
}

fn process(args: &RunArgs, process: &mut ProcessSpec) {
    put(&mut process.pid, args.target_pid.map(Some));
    put(&mut process.name, args.target_name.clone().map(Some));
    put(&mut process.cmd, args.target_cmd.clone().map(Some));
    put(&mut process.cgroup, args.target_cgroup.clone().map(Some));
    put(
        &mut process.container,
        args.target_container.clone().map(Some),
    );
    put(&mut process.metrics, args.target_metrics.clone().map(Some));
    put(&mut process.interval, args.sample_interval);
    put(&mut process.output, args.target_output);
    put(&mut process.baseline, args.baseline.map(Some));
    put(&mut process.cooldown, args.cooldown.map(Some));
    put(&mut process.memory_limit_mb, args.memory_limit.map(Some));
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

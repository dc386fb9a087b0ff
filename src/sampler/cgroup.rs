//! A cgroup as the target (`--target-cgroup`, v2 or v1): the memory the kernel charges to
//! it, split into anonymous memory — what the leak verdict judges — and page cache (which
//! is reclaimable, so a growing cache is not a leak), its CPU, processes, threads and, where
//! readable, open files. This is how a server in a container is watched: the container is a
//! cgroup.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sampler::{Charged, Reading};

/// Which cgroup interface the folder speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `memory.current`, `memory.stat` (`anon`, `file`), `cpu.stat` (`usage_usec`).
    V2,
    /// `memory.usage_in_bytes`, `memory.stat` (`total_rss`, `total_cache`), and the CPU in
    /// the `cpuacct` hierarchy beside the memory one.
    V1,
}

/// An opened cgroup.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    version: Version,
    /// v1: the same group in the `cpuacct` hierarchy, when it exists.
    cpuacct: Option<PathBuf>,
    /// The last CPU reading (when, total CPU time in ns), for a rate.
    last_cpu: Option<(Instant, u64)>,
}

impl Cgroup {
    /// Opens `path`: an error (one line) when it does not exist or is not a cgroup with the
    /// memory controller.
    pub fn open(path: &Path) -> Result<Cgroup, String> {
        let shown = path.display();
        if !path.is_dir() {
            return Err(format!("{shown}: no such cgroup folder"));
        }
        let version = if path.join("memory.current").is_file() {
            Version::V2
        } else if path.join("memory.usage_in_bytes").is_file() {
            Version::V1
        } else {
            return Err(format!(
                "{shown}: not a cgroup with the memory controller (no memory.current or memory.usage_in_bytes); a container's is under /sys/fs/cgroup"
            ));
        };
        let cpuacct = match version {
            Version::V2 => None,
            Version::V1 => {
                let text = path.to_string_lossy();
                let beside = text.replacen("/memory/", "/cpuacct/", 1);
                let beside = PathBuf::from(beside);
                beside.join("cpuacct.usage").is_file().then_some(beside)
            }
        };
        Ok(Cgroup {
            path: path.to_path_buf(),
            version,
            cpuacct,
            last_cpu: None,
        })
    }

    /// The path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One reading: `rss_bytes` is the group's anonymous memory; `None` when the cgroup is
    /// gone (the container was removed).
    pub fn read(&mut self) -> Option<(Reading, Charged)> {
        let (charged, anon, cache) = self.memory()?;
        let pids = self.pids();
        let threads = self.count_lines(match self.version {
            Version::V2 => "cgroup.threads",
            Version::V1 => "tasks",
        });
        let fds = pids
            .iter()
            .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
            .map(|dir| dir.count() as u32)
            .sum();
        Some((
            Reading {
                rss_bytes: anon,
                cpu_pct: self.cpu_pct(),
                fds,
                threads: Some(threads.unwrap_or(pids.len() as u32)),
                procs: pids.len() as u32,
            },
            Charged {
                cache_bytes: cache,
                charged_bytes: charged,
            },
        ))
    }

    /// (charged, anonymous, page cache) bytes.
    fn memory(&self) -> Option<(u64, u64, u64)> {
        let read = |name: &str| std::fs::read_to_string(self.path.join(name)).ok();
        let stat = read("memory.stat")?;
        let field = |key: &str| {
            stat.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        match self.version {
            Version::V2 => {
                let charged = read("memory.current")?.trim().parse().ok()?;
                Some((charged, field("anon")?, field("file").unwrap_or(0)))
            }
            Version::V1 => {
                let charged = read("memory.usage_in_bytes")?.trim().parse().ok()?;
                let anon = field("total_rss").or_else(|| field("rss"))?;
                let cache = field("total_cache").or_else(|| field("cache")).unwrap_or(0);
                Some((charged, anon, cache))
            }
        }
    }

    fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn count_lines(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.path.join(name))
            .ok()
            .map(|t| t.lines().count() as u32)
    }

    /// CPU since the last reading, % of one core (0 on the first).
    fn cpu_pct(&mut self) -> f32 {
        let ns = match self.version {
            Version::V2 => std::fs::read_to_string(self.path.join("cpu.stat"))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        l.strip_prefix("usage_usec ")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                })
                .map(|us| us * 1000),
            Version::V1 => self
                .cpuacct
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p.join("cpuacct.usage")).ok())
                .and_then(|t| t.trim().parse::<u64>().ok()),
        };
        let now = Instant::now();
        let Some(ns) = ns else { return 0.0 };
        let pct = match self.last_cpu {
            Some((then, before)) => {
                let wall = now.duration_since(then).as_nanos().max(1) as f64;
                (ns.saturating_sub(before) as f64 / wall * 100.0) as f32
            }
            None => 0.0,
        };
        self.last_cpu = Some((now, ns));
        pct
    }
}

/// The cgroup folder of a running Docker or Podman container, through the runtime's CLI
/// (`inspect` for its PID, then `/proc/PID/cgroup`): an error (one line) when neither CLI is
/// installed, the runtime cannot be reached, or the container is not running.
pub fn of_container(name: &str) -> Result<PathBuf, String> {
    let runtime = ["docker", "podman"]
        .into_iter()
        .find(|cli| on_path(cli))
        .ok_or_else(|| {
            format!(
                "--target-container {name}: neither docker nor podman is installed; give the container's cgroup with --target-cgroup PATH"
            )
        })?;
    let output = std::process::Command::new(runtime)
        .args([
            "inspect",
            "--format",
            "{{.State.Pid}} {{.State.Running}}",
            name,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| format!("--target-container {name}: cannot run {runtime}: {err}"))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        return Err(format!(
            "--target-container {name}: {runtime} inspect failed: {why}"
        ));
    }
    let answer = String::from_utf8_lossy(&output.stdout);
    let mut words = answer.split_whitespace();
    let (pid, running) = (words.next(), words.next());
    let pid: u32 = match (pid.and_then(|p| p.parse().ok()), running) {
        (Some(pid), Some("true")) if pid > 0 => pid,
        _ => {
            return Err(format!(
                "--target-container {name}: the container is not running ({runtime} says `{}`)",
                answer.trim()
            ));
        }
    };
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|err| format!("--target-container {name}: /proc/{pid}/cgroup: {err}"))?;
    let path = cgroup_of(&cgroups).ok_or_else(|| {
        format!("--target-container {name}: no memory cgroup in /proc/{pid}/cgroup")
    })?;
    Cgroup::open(&path).map_err(|why| format!("--target-container {name}: {why}"))?;
    Ok(path)
}

/// The memory cgroup folder named in a `/proc/PID/cgroup` text: v1's `memory` line, else
/// the v2 line (`0::/…`).
fn cgroup_of(text: &str) -> Option<PathBuf> {
    let line = |want: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            want(controllers).then(|| path.trim_start_matches('/').to_string())
        })
    };
    if let Some(path) = line(&|c| c.split(',').any(|c| c == "memory")) {
        return Some(Path::new("/sys/fs/cgroup/memory").join(path));
    }
    line(&|c| c.is_empty()).map(|path| Path::new("/sys/fs/cgroup").join(path))
}

fn on_path(cli: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cli).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cgroup_of_a_process_is_found_in_v1_and_v2_texts() {
        let v1 = "9:name=systemd:/\n4:memory:/docker/abc123\n2:cpuacct:/\n0::/\n";
        assert_eq!(
            cgroup_of(v1),
            Some(PathBuf::from("/sys/fs/cgroup/memory/docker/abc123"))
        );
        let v2 = "0::/system.slice/docker-abc123.scope\n";
        assert_eq!(
            cgroup_of(v2),
            Some(PathBuf::from(
                "/sys/fs/cgroup/system.slice/docker-abc123.scope"
            ))
        );
        assert_eq!(cgroup_of("3:cpu:/x\n"), None);
    }

    #[test]
    fn a_folder_that_is_not_a_cgroup_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = Cgroup::open(dir.path()).unwrap_err();
        assert!(err.contains("not a cgroup"), "{err}");
        let err = Cgroup::open(&dir.path().join("nope")).unwrap_err();
        assert!(err.contains("no such cgroup"), "{err}");
    }

    #[test]
    fn v1_and_v2_files_are_read_with_anon_apart_from_cache() {
        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("memory.current"), "300000000\n").unwrap();
        std::fs::write(
            v2.path().join("memory.stat"),
            "anon 100000000\nfile 190000000\nkernel 1\n",
        )
        .unwrap();
        std::fs::write(
            v2.path().join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        std::fs::write(v2.path().join("cgroup.threads"), "1\n2\n3\n").unwrap();
        std::fs::write(v2.path().join("cpu.stat"), "usage_usec 5000\n").unwrap();
        let (r, c) = Cgroup::open(v2.path()).unwrap().read().unwrap();
        assert_eq!(
            (r.rss_bytes, c.cache_bytes, c.charged_bytes),
            (100_000_000, 190_000_000, 300_000_000)
        );
        assert_eq!((r.procs, r.threads), (1, Some(3)));
        assert!(r.fds >= 3, "this process's open files: {r:?}");

        let v1 = tempfile::tempdir().unwrap();
        std::fs::write(v1.path().join("memory.usage_in_bytes"), "50\n").unwrap();
        std::fs::write(
            v1.path().join("memory.stat"),
            "cache 5\nrss 7\ntotal_cache 30\ntotal_rss 20\n",
        )
        .unwrap();
        let (r, c) = Cgroup::open(v1.path()).unwrap().read().unwrap();
        assert_eq!(
            (r.rss_bytes, c.cache_bytes, c.charged_bytes),
            (20, 30, 50),
            "hierarchical totals"
        );
        std::fs::remove_file(v1.path().join("memory.stat")).unwrap();
        let mut gone = Cgroup::open(v2.path()).unwrap();
        drop(v2);
        assert!(gone.read().is_none(), "a removed cgroup reads as gone");
    }
}

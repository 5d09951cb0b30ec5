//! Shared pieces of the benchmark drivers under `tests/bench/`.

use std::process::Child;

pub mod http1;
pub mod lifecycle;

/// A child process (gateway, simulator) that is killed and reaped when this is dropped, so
/// a benchmark that panics leaves nothing running on the machine.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets `key = value` in the table `[section]` of a TOML file's text: replaces the key's
/// line if the table has one, adds it at the end of the table otherwise, and appends the
/// table when the file has none. Line-based, so the file's comments stay; a commented-out
/// `# [section]` is not the table. `value` is written as given (quote strings yourself).
pub fn toml_set(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let line = format!("{key} = {value}");
    let is_key = |t: &str| {
        t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let mut out: Vec<&str> = Vec::new();
    let (mut inside, mut seen, mut done) = (false, false, false);
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if inside && !done {
                out.push(&line);
                done = true;
            }
            inside = t.split('#').next().unwrap_or("").trim() == header;
            seen |= inside;
            out.push(l);
        } else if inside && !done && is_key(t) {
            out.push(&line);
            done = true;
        } else {
            out.push(l);
        }
    }
    if inside && !done {
        out.push(&line);
    }
    let mut s = out.join("\n");
    if !seen {
        s.push_str("\n\n");
        s.push_str(&header);
        s.push('\n');
        s.push_str(&line);
    }
    s.push('\n');
    s
}

/// Starts `c2c-gateway serve` on 127.0.0.1:`port` with `dir/policies` and `dir/data`, its
/// log in `dir/gateway.log`, warnings only, and no SIP edge listener (a taken 5060, another
/// gateway on the host, would stop start-up). The drivers start every gateway this way.
pub fn spawn_gateway(
    binary: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> std::io::Result<std::process::Child> {
    gateway_command(binary, dir, port)?.spawn()
}

/// The command [`spawn_gateway`] runs, for a driver that needs to set more (the inbound
/// benchmark gives the SIP edge a known address with `C2C_SIP_LISTEN`).
pub fn gateway_command(
    binary: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> std::io::Result<std::process::Command> {
    let mut c = std::process::Command::new(binary);
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--policies")
        .arg(dir.join("policies"))
        .arg("--data")
        .arg(dir.join("data"))
        .env("C2C_LOG", "warn")
        .env("C2C_SIP_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("gateway.log"))?);
    Ok(c)
}

/// A KiB (or count) field of `/proc/<pid>/status` (`VmRSS:`, `VmData:`, `Threads:`);
/// 0 when the process or the field is gone.
pub fn proc_status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// The machine's CPU time so far, from the `cpu` line of `/proc/stat` (clock ticks):
/// all of it, the busy part (neither idle nor waiting for I/O), and the part the
/// hypervisor gave to other guests (steal). Steal is what makes this VM's speed swing
/// between runs: a benchmark prints it so a slow run can be told from a slow build.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    total: u64,
    busy: u64,
    steal: u64,
}

impl MachineCpu {
    pub fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        let total: u64 = (0..8).map(at).sum();
        MachineCpu {
            total,
            busy: total - at(3) - at(4) - at(7),
            steal: at(7),
        }
    }

    /// `(busy, steal)` as shares (%) of the machine's CPU time since `earlier`.
    pub fn shares_since(&self, earlier: &MachineCpu) -> (f64, f64) {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / total;
        (pct(self.busy, earlier.busy), pct(self.steal, earlier.steal))
    }
}

#[cfg(test)]
mod tests {
    use super::toml_set;

    #[test]
    fn sets_replaces_and_appends() {
        let t = "a = 1\n\n[simulator]\nlisten = \"x\"\n# c\n\n[[regions]]\nname = \"r\"\n";
        let t = toml_set(t, "simulator", "listen", "\"y\"");
        assert!(t.contains("[simulator]\nlisten = \"y\"\n# c"), "{t}");
        let t = toml_set(&t, "simulator", "other", "2");
        assert!(t.contains("# c\n\nother = 2\n[[regions]]"), "{t}");
        // Commented out is not the table.
        let t = toml_set(&format!("{t}# [agents]\n"), "agents", "max", "3");
        assert!(t.ends_with("# [agents]\n\n[agents]\nmax = 3\n"), "{t}");
        let t = toml_set(&t, "agents", "max", "4");
        assert!(t.ends_with("[agents]\nmax = 4\n"), "{t}");
    }
}

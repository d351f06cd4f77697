//! A process as Linux's `/proc` describes it: CPU time, memory, threads,
//! descriptors and context switches, parsed from the text of
//! `/proc/PID/stat` and `/proc/PID/status` (the binary reads them, and
//! counts `/proc/PID/fd`). A thread's `/proc/PID/task/TID/stat` has the
//! same layout, so a group of threads is the sum of theirs.

/// One reading of a process (or of a group of its threads).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// CPU time in user mode, in clock ticks.
    pub user_ticks: u64,
    /// CPU time in the kernel on its behalf, in clock ticks.
    pub system_ticks: u64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors (sockets included), when they could be
    /// counted (another user's process hides them).
    pub fds: Option<u64>,
    /// The most file descriptors it may open (the soft limit), when known.
    pub max_fds: Option<u64>,
    /// Context switches the process asked for (it waited: I/O, a lock).
    pub voluntary_switches: u64,
    /// Context switches the scheduler forced (it wanted more CPU).
    pub involuntary_switches: u64,
}

/// From a `stat` file: the process's (or thread's) name, its user and
/// system CPU ticks. `None` when the text is not a stat line.
///
/// The name is in parentheses and may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<(&str, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?;
    // Fields from the third (state); utime is the 14th, stime the 15th.
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((name, user, system))
}

/// From a `stat` file: the state letter (`R` running, `S` sleeping, `D`
/// waiting on I/O, `Z` exited but not yet reaped, ...).
pub fn parse_state(text: &str) -> Option<char> {
    let close = text.rfind(')')?;
    text.get(close + 1..)?
        .split_ascii_whitespace()
        .next()?
        .chars()
        .next()
}

/// From a `status` file: resident memory, threads and context switches
/// into `reading`. Lines it does not know are skipped.
pub fn parse_status(text: &str, reading: &mut Reading) {
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut words = value.split_ascii_whitespace();
        let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) else {
            continue;
        };
        match key {
            // In kB (the kernel's kB are KiB).
            "VmRSS" => reading.rss_bytes = n.saturating_mul(1024),
            "Threads" => reading.threads = n,
            "voluntary_ctxt_switches" => reading.voluntary_switches = n,
            "nonvoluntary_ctxt_switches" => reading.involuntary_switches = n,
            _ => {}
        }
    }
}

/// From a `limits` file: the soft limit on open files (`None` when
/// unlimited or absent).
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// From `/proc/stat`: the CPU ticks spent busy (all but idle and
/// waiting for I/O) over all CPUs, and how many CPUs there are.
pub fn parse_machine(text: &str) -> Option<(u64, u64)> {
    let mut busy = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") => {
                let ticks: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal ...
                let total: u64 = ticks.iter().take(8).sum();
                let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
                busy = Some(total.saturating_sub(idle));
            }
            Some(w) if w.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    Some((busy?, cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_name_with_spaces_and_parentheses() {
        let line = "4242 (lab (worker) 1) S 1 4242 4242 0 -1 4194560 2059 0 0 0 \
                    731 52 0 0 20 0 9 0 123456 1234567 890 18446744073709551615";
        assert_eq!(parse_stat(line), Some(("lab (worker) 1", 731, 52)));
        assert_eq!(parse_state(line), Some('S'));
        assert_eq!(parse_state("12 (x) Z 1"), Some('Z'));
        assert_eq!(parse_state("12 (x)"), None);
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parentheses at all"), None);
        assert_eq!(parse_stat(")("), None);
    }

    #[test]
    fn a_status_file_gives_memory_threads_and_switches() {
        let text = "Name:\tlab\nVmRSS:\t  20480 kB\nThreads:\t9\n\
                    voluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t12\n\
                    VmSwap: junk\nno colon here\n";
        let mut r = Reading::default();
        parse_status(text, &mut r);
        assert_eq!(r.rss_bytes, 20480 * 1024);
        assert_eq!(r.threads, 9);
        assert_eq!(r.voluntary_switches, 1500);
        assert_eq!(r.involuntary_switches, 12);
    }

    #[test]
    fn the_machine_is_busy_in_all_but_idle_and_iowait() {
        let text = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n\
                    cpu1 50 3 25 500 10 2 1 0 0 0\nintr 12345\n";
        assert_eq!(parse_machine(text), Some((160, 2)));
        assert_eq!(parse_machine("intr 1\n"), None);
        assert_eq!(parse_machine("cpu 1 2\n"), None);
    }

    #[test]
    fn the_limits_file_gives_the_soft_limit_on_open_files() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             95282                95282                processes\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(text), Some(1024));
        assert_eq!(
            parse_max_fds("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(parse_max_fds(""), None);
    }
}

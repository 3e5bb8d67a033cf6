//! Numbers for people, stated once: the `m:ss` clock of positions and
//! durations, counts, lengths of time, sizes and bitrates.

/// "m:ss" (or "h:mm:ss") for a position or a duration in milliseconds;
/// before zero reads `0:00`.
pub fn clock(ms: i64) -> String {
    clock_secs(u64::try_from(ms).unwrap_or(0) / 1000)
}

/// "m:ss" (or "h:mm:ss") for whole seconds.
pub fn clock_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A count for a person: `950`, `1.2k`, `12k`, `3.4M`.
pub fn human_count(n: u64) -> String {
    fn short(n: u64, unit: u64, suffix: &str) -> String {
        // u128: no overflow near u64::MAX.
        let (n, unit) = (u128::from(n), u128::from(unit));
        let tenths = (n * 10 + unit / 2) / unit;
        if tenths >= 100 {
            format!("{}{suffix}", (n + unit / 2) / unit)
        } else if tenths.is_multiple_of(10) {
            format!("{}{suffix}", tenths / 10)
        } else {
            format!("{}.{}{suffix}", tenths / 10, tenths % 10)
        }
    }
    match n {
        0..1_000 => n.to_string(),
        1_000..999_500 => short(n, 1_000, "k"),
        _ => short(n, 1_000_000, "M"),
    }
}

/// A duration for a person: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Milliseconds for a person: `850 ms`, `1.4 s`, `12 s`.
pub fn human_ms(ms: u32) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000 + 50) / 100 % 10)
    } else {
        format!("{} s", (u64::from(ms) + 500) / 1000)
    }
}

/// A bitrate for a person: `800 kbit/s`, `2.5 Mbit/s`.
pub fn human_bitrate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{}.{} Mbit/s", bps / 1_000_000, bps / 100_000 % 10)
    } else {
        format!("{} kbit/s", bps / 1000)
    }
}

/// "1.2 GB", "340 MB", "12 kB" for a size in bytes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_minutes_and_hours() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(-5), "0:00");
        assert_eq!(clock(65_400), "1:05");
        assert_eq!(clock(3_725_000), "1:02:05");
        assert_eq!(clock(59_999), "0:59");
        assert_eq!(clock(61_500), "1:01");
        assert_eq!(clock(3_723_000), "1:02:03");
        assert_eq!(clock_secs(5), "0:05");
        assert_eq!(clock_secs(125), "2:05");
        assert_eq!(clock_secs(3725), "1:02:05");
    }

    #[test]
    fn counts_read_like_a_person_writes_them() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1000), "1k");
        assert_eq!(human_count(1234), "1.2k");
        assert_eq!(human_count(12_345), "12k");
        assert_eq!(human_count(999_400), "999k");
        assert_eq!(human_count(999_600), "1M");
        assert_eq!(human_count(3_400_000), "3.4M");
        // Stored numbers may be anything: the largest ones still format.
        assert_eq!(human_count(u64::MAX), "18446744073710M");
        assert_eq!(human_ms(u32::MAX), "4294967 s");
    }

    #[test]
    fn durations_have_two_units_at_most() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(725), "12m 5s");
        assert_eq!(human_duration(3 * 3600 + 20 * 60 + 9), "3h 20m");
        assert_eq!(human_duration(2 * 86_400 + 4 * 3600), "2d 4h");
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(1420), "1.4 s");
        assert_eq!(human_ms(12_400), "12 s");
        assert_eq!(human_bitrate(800_000), "800 kbit/s");
        assert_eq!(human_bitrate(2_500_000), "2.5 Mbit/s");
    }

    #[test]
    fn sizes_and_rates_read_well() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345), "12 kB");
        assert_eq!(human_bytes(1_234_567_890), "1.2 GB");
        assert_eq!(human_bitrate(2_540_000), "2.5 Mbit/s");
        assert_eq!(human_bitrate(640_000), "640 kbit/s");
    }
}

//! How values read in messages, wherever they are written: sizes and times.

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A UTC time as `2026-11-26T02:00:00Z`.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A throughput: `12.3 MiB/s`, or `-` for none (a transfer too quick to time).
pub fn rate(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        Some(r) if r.is_finite() && r >= 0.0 => format!("{}/s", human_bytes(r as u64)),
        _ => "-".into(),
    }
}

/// A measured time in seconds: `0.4s`, `2m 5s` (see [`offsite_policies::rto::duration_words`]).
pub fn seconds(s: f64) -> String {
    std::time::Duration::try_from_secs_f64(s)
        .map(offsite_policies::rto::duration_words)
        .unwrap_or_else(|_| "-".into())
}

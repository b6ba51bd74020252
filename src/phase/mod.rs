//! The steps commands are made of. A command (init, plan, reset, ...) runs, per node, an ordered
//! list of these phases inside the fleet's sliding window; each phase is a small async function
//! over one node's `Remote`, so a newcomer can read a command top to bottom.

pub mod connect;
pub mod gather;
pub mod lock;
pub mod manager;
pub mod reset;
pub mod txn;

use std::time::{SystemTime, UNIX_EPOCH};

/// A run id: UTC time plus a few random bits, sortable, used for backup directories and locks.
pub fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (d, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(d as i64);
    let salt = now.subsec_nanos() ^ std::process::id().rotate_left(16);
    format!(
        "{y:04}{m:02}{day:02}T{:02}{:02}{:02}Z-{:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        salt & 0xffff
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_415), (2025, 11, 23));
        let id = super::new_run_id();
        assert_eq!(id.len(), "20261123T070512Z-abcd".len(), "{id}");
    }
}

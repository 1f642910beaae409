//! oneM2M time formats (TS-0004 §6.3.3): `m2m:timestamp` (ISO 8601 basic, UTC, optional
//! comma fraction) and `m2m:absRelTimestamp` (a timestamp or milliseconds from now).
//!
//! Times are whole seconds since the Unix epoch: resource timestamps are emitted without a
//! fraction, so comparing at second granularity keeps filters consistent with what clients see.
//! [`parse_millis`] and [`format_millis`] keep milliseconds for the few attributes that need
//! them (a `<timeSeries>` data point's `dgt` and its missing-data list).

use std::fmt::Write as _;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Latest instant Bastion accepts (9999-12-31T23:59:59Z), keeping formatting in four digits.
pub const MAX: Timestamp = Timestamp(253_402_300_799);

impl Timestamp {
    /// Parses `YYYYMMDDThhmmss[,f…]` (fraction of up to 9 digits, truncated). Also accepts a
    /// `.` fraction and a trailing `Z`, which peers in the field send.
    pub fn parse(s: &str) -> Option<Timestamp> {
        parse_with_millis(s).map(|(t, _)| t)
    }

    /// Formats as `YYYYMMDDThhmmss`.
    pub fn format(self) -> String {
        let mut out = String::with_capacity(15);
        self.write_to(&mut out);
        out
    }

    fn write_to(self, out: &mut String) {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            out,
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            y,
            m,
            d,
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
    }

    pub fn plus_seconds(self, s: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(s).min(MAX.0))
    }
}

/// Milliseconds since the epoch of a timestamp, its fraction kept to the millisecond
/// (truncated). For the few attributes whose meaning is finer than a second, such as a
/// data point's generation time in a `<timeSeries>` with a sub-second period.
pub fn parse_millis(s: &str) -> Option<i64> {
    let (t, millis) = parse_with_millis(s)?;
    t.0.checked_mul(1000)?.checked_add(i64::from(millis))
}

/// Formats milliseconds since the epoch as a timestamp, with a `,fff` fraction only when
/// it is not a whole second (so whole seconds read exactly as [`Timestamp::format`]).
pub fn format_millis(ms: i64) -> String {
    let mut out = Timestamp(ms.div_euclid(1000)).format();
    let frac = ms.rem_euclid(1000);
    if frac != 0 {
        let _ = write!(out, ",{frac:03}");
    }
    out
}

/// A timestamp and the milliseconds of its fraction.
fn parse_with_millis(s: &str) -> Option<(Timestamp, u32)> {
    let b = s.as_bytes();
    if b.len() < 15 || b[8] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let mut rest = &s[15..];
    let mut millis = 0u32;
    if let Some(frac) = rest.strip_prefix([',', '.']) {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        // The first three digits, right-padded: ",5" is 500 ms, ",0125" is 12 ms.
        millis = frac[..digits]
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |acc, c| acc * 10 + u32::from(c - b'0'));
        rest = &frac[digits..];
    }
    if !(rest.is_empty() || rest == "Z") {
        return None;
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59
    {
        return None;
    }
    Some((
        Timestamp(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se),
        millis,
    ))
}

/// Parses an `m2m:absRelTimestamp`: an absolute timestamp, or an integer number of
/// milliseconds relative to `now` (rounded down to whole seconds).
pub fn parse_abs_rel(s: &str, now: Timestamp) -> Option<Timestamp> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
        let ms: i64 = s.parse().ok()?;
        return Some(now.plus_seconds(ms.div_euclid(1000)));
    }
    Timestamp::parse(s)
}

/// Parses an `xs:duration` without years or months (their length varies): `PnDTnHnMnS`,
/// seconds possibly fractional, e.g. `PT5S`, `PT0.5S`, `P1DT2H`. Also accepts a plain
/// number of milliseconds, as some peers send. `None` for anything else or for a
/// duration over ten years.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return Some(std::time::Duration::from_millis(s.parse().ok()?));
    }
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut secs = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let at = units[next_unit..].iter().position(|(u, _)| *u == c)? + next_unit;
            let value: f64 = number.parse().ok()?;
            if !value.is_finite() || (units[at].0 != 'S' && number.contains('.')) {
                return None;
            }
            secs += value * units[at].1;
            any = true;
            number.clear();
            next_unit = at + 1;
        }
        number.is_empty().then_some(())
    };
    take(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && secs <= 315_576_000.0).then(|| std::time::Duration::from_secs_f64(secs))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Proleptic Gregorian day count (days since 1970-01-01), era-based so it needs no tables.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0004_6_3_3_timestamp_fraction_is_kept_to_the_millisecond() {
        let whole = parse_millis("20261203T120000").unwrap();
        assert_eq!(whole % 1000, 0);
        assert_eq!(parse_millis("20261203T120000,5"), Some(whole + 500));
        assert_eq!(parse_millis("20261203T120000.0125Z"), Some(whole + 12));
        assert_eq!(parse_millis("20261203T120000,999999999"), Some(whole + 999));
        // Anything after the digits but `Z` is refused, never misread as a digit.
        assert_eq!(parse_millis("20261203T120000,5!"), None);
        assert_eq!(parse_millis("20261203T120000,"), None);
        assert_eq!(format_millis(whole), "20261203T120000");
        assert_eq!(format_millis(whole + 7), "20261203T120000,007");
        assert_eq!(parse_millis(&format_millis(whole + 7)), Some(whole + 7));
        // The second-granularity parse is unchanged: the fraction is truncated.
        assert_eq!(
            Timestamp::parse("20261203T120000,5").unwrap().0 * 1000,
            whole
        );
    }

    #[test]
    fn ts0004_timestamp_round_trip() {
        let t = Timestamp::parse("20240229T235959").unwrap();
        assert_eq!(t.format(), "20240229T235959");
        assert_eq!(Timestamp(0).format(), "19700101T000000");
        assert_eq!(
            Timestamp::parse("20240101T120000,123456").unwrap().format(),
            "20240101T120000"
        );
        assert_eq!(MAX.format(), "99991231T235959");
    }

    #[test]
    fn ts0004_timestamp_rejects_malformed() {
        for bad in [
            "",
            "2024",
            "20240230T000000",
            "20241301T000000",
            "20240101 120000",
            "20240101T250000",
            "2024010aT000000",
            "20240101T120000,",
            "20240101T120000x",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn abs_rel_is_milliseconds_from_now() {
        let now = Timestamp(1_000);
        assert_eq!(parse_abs_rel("5000", now), Some(Timestamp(1_005)));
        assert_eq!(parse_abs_rel("19700101T000010", now), Some(Timestamp(10)));
    }

    #[test]
    fn xs_duration_subset() {
        use std::time::Duration;
        assert_eq!(parse_duration("PT5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("PT0.25S"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("P1DT2H3M4S"),
            Some(Duration::from_secs(93_784))
        );
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        for bad in [
            "", "P", "PT", "T5S", "PT5", "PT5X", "P1M", "PT1.5M", "PT5S5S", "PTSS", "P99999D",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

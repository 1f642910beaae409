//! The oneM2M "extended crontab" `scheduleEntry` (TS-0004 7.4.9.1; digest §6) used by the
//! `actw` context parameter, and the UTC calendar arithmetic needed to match it.
//!
//! An entry has exactly 7 fields separated by blanks:
//! `second minute hour day-of-month month day-of-week year`, with ranges 0-59, 0-59, 0-23,
//! 1-31, 1-12, 0-6 (0 = Sunday) and 2000-9999. Each field is a comma list of items, each
//! item one of `*`, `*/step`, `a`, `a-b` or `a-b/step`. Nothing else is accepted: no names
//! (`MON`), no `?`/`L`/`W`/`#`, no `a/step`, no wrap-around range (`22-6`), no 7 for Sunday.
//!
//! Day-of-month and day-of-week are ANDed like every other field (a time matches only when
//! every field matches). Traditional cron ORs them when both are restricted; oneM2M does not
//! say, and AND is the reading that grants the smaller set (fail closed); see
//! docs/decisions.md.
//!
//! Parsing allocates (once, when an ACP is written); matching does not: the six small
//! fields are bit sets and the year field a short list of stepped ranges.

use std::fmt;

/// One field of the entry: name and inclusive value range.
struct Field {
    name: &'static str,
    min: u16,
    max: u16,
}

const FIELDS: [Field; 7] = [
    Field {
        name: "second",
        min: 0,
        max: 59,
    },
    Field {
        name: "minute",
        min: 0,
        max: 59,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 6,
    },
    Field {
        name: "year",
        min: 2000,
        max: 9999,
    },
];

/// `start..=end` every `step` (the compiled form of one field item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Steps {
    start: u16,
    end: u16,
    step: u16,
}

impl Steps {
    fn contains(self, v: u16) -> bool {
        v >= self.start && v <= self.end && (v - self.start).is_multiple_of(self.step)
    }
}

/// A parsed `scheduleEntry`.
#[derive(Clone, Debug)]
pub struct Schedule {
    raw: Box<str>,
    /// Bit `v` set when value `v` matches; index 0..6 = second … day-of-week.
    bits: [u64; 6],
    years: Box<[Steps]>,
}

impl Schedule {
    /// Parses one entry; the error is a short reason naming the offending field.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "must have 7 fields 'second minute hour day-of-month month day-of-week year', found {}",
                fields.len()
            ));
        }
        let mut bits = [0u64; 6];
        let mut years = Vec::new();
        for (i, (text, field)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            let items = parse_field(text, field)?;
            match bits.get_mut(i) {
                Some(set) => {
                    for s in &items {
                        let mut v = s.start;
                        while v <= s.end {
                            *set |= 1u64 << v;
                            v = v.saturating_add(s.step);
                        }
                    }
                }
                None => years = items,
            }
        }
        Ok(Schedule {
            raw: text.into(),
            bits,
            years: years.into(),
        })
    }

    /// The entry as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// True when the UTC instant `t` (Unix seconds) falls in this entry.
    pub fn matches(&self, t: i64) -> bool {
        self.matches_civil(&Civil::from_unix(t))
    }

    pub(crate) fn matches_civil(&self, c: &Civil) -> bool {
        let Ok(year) = u16::try_from(c.year) else {
            return false;
        };
        let values = [c.second, c.minute, c.hour, c.day, c.month, c.weekday];
        values
            .iter()
            .zip(self.bits.iter())
            .all(|(&v, &set)| set.checked_shr(u32::from(v)).is_some_and(|b| b & 1 != 0))
            && self.years.iter().any(|s| s.contains(year))
    }
}

fn parse_field(text: &str, field: &Field) -> Result<Vec<Steps>, String> {
    text.split(',')
        .map(|item| parse_item(item, field))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| format!("{} field '{}': {why}", field.name, shown(text)))
}

fn parse_item(item: &str, field: &Field) -> Result<Steps, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step = number(step)?;
            if step == 0 {
                return Err("step must be at least 1".to_owned());
            }
            (range, Some(step))
        }
        None => (item, None),
    };
    let (start, end) = if range == "*" {
        (field.min, field.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(a, field)?, value(b, field)?);
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        (a, b)
    } else {
        if step.is_some() {
            return Err("a step needs '*' or a range before it".to_owned());
        }
        let v = value(range, field)?;
        (v, v)
    };
    Ok(Steps {
        start,
        end,
        step: step.unwrap_or(1),
    })
}

fn value(text: &str, field: &Field) -> Result<u16, String> {
    let v = number(text)?;
    if v < field.min || v > field.max {
        return Err(format!("value {v} outside {}-{}", field.min, field.max));
    }
    Ok(v)
}

/// One to four ASCII digits.
fn number(text: &str) -> Result<u16, String> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{}' is not a number of at most 4 digits",
            shown(text)
        ));
    }
    text.parse::<u16>()
        .map_err(|_| format!("'{}' is not a number", shown(text)))
}

fn shown(s: &str) -> String {
    s.chars().take(24).collect()
}

/// A UTC calendar breakdown of a Unix time (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u16,
    pub day: u16,
    pub hour: u16,
    pub minute: u16,
    pub second: u16,
    /// 0 = Sunday.
    pub weekday: u16,
}

impl Civil {
    /// Howard Hinnant's `civil_from_days`, on `i64` so every input is defined.
    pub fn from_unix(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (4).
        let weekday = (days + 4).rem_euclid(7);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Every narrowed value below is bounded (day 1..=31, month 1..=12, …).
        let small = |v: i64| u16::try_from(v).unwrap_or(u16::MAX);
        Civil {
            year,
            month: small(month),
            day: small(day),
            hour: small(secs / 3600),
            minute: small(secs / 60 % 60),
            second: small(secs % 60),
            weekday: small(weekday),
        }
    }
}

impl fmt::Display for Civil {
    /// oneM2M basic format, `YYYYMMDDTHHMMSS` (UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC date-time (test helper; days_from_civil).
    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2.rem_euclid(400);
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + h * 3600 + mi * 60 + s
    }

    fn sched(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn civil_breakdown_known_dates() {
        let c = Civil::from_unix(0);
        assert_eq!(c.to_string(), "19700101T000000");
        assert_eq!(c.weekday, 4);
        // 2026-11-22 12:13:14 UTC is a Sunday.
        let c = Civil::from_unix(utc(2026, 11, 22, 12, 13, 14));
        assert_eq!(c.to_string(), "20261122T121314");
        assert_eq!(c.weekday, 0);
        // Leap day and the day after.
        assert_eq!(
            Civil::from_unix(utc(2024, 2, 29, 23, 59, 59)).to_string(),
            "20240229T235959"
        );
        assert_eq!(
            Civil::from_unix(utc(2024, 2, 29, 23, 59, 59) + 1).to_string(),
            "20240301T000000"
        );
        // 2000-01-01 was a Saturday; before the epoch works too.
        assert_eq!(Civil::from_unix(utc(2000, 1, 1, 0, 0, 0)).weekday, 6);
        assert_eq!(Civil::from_unix(-1).to_string(), "19691231T235959");
        // Extremes do not panic.
        let _ = Civil::from_unix(i64::MIN);
        let _ = Civil::from_unix(i64::MAX);
    }

    #[test]
    fn civil_round_trips_every_day_for_decades() {
        let mut t = utc(1999, 1, 1, 0, 0, 0);
        let mut wd = Civil::from_unix(t).weekday;
        while t < utc(2101, 1, 1, 0, 0, 0) {
            let c = Civil::from_unix(t + 3723);
            assert_eq!(
                utc(
                    c.year,
                    i64::from(c.month),
                    i64::from(c.day),
                    i64::from(c.hour),
                    i64::from(c.minute),
                    i64::from(c.second)
                ),
                t + 3723
            );
            assert_eq!(c.weekday, wd);
            wd = (wd + 1) % 7;
            t += 86_400;
        }
    }

    #[test]
    fn working_hours_boundaries() {
        let s = sched("* * 8-17 * * * *");
        assert!(!s.matches(utc(2026, 3, 4, 7, 59, 59)));
        assert!(s.matches(utc(2026, 3, 4, 8, 0, 0)));
        assert!(s.matches(utc(2026, 3, 4, 17, 59, 59)));
        assert!(!s.matches(utc(2026, 3, 4, 18, 0, 0)));
    }

    #[test]
    fn every_field_kind() {
        let s = sched("0,30 */15 9 1-10/3 2,4-5 * 2030-2040/5");
        assert!(s.matches(utc(2030, 2, 1, 9, 0, 0)));
        assert!(s.matches(utc(2035, 5, 10, 9, 45, 30)));
        assert!(s.matches(utc(2040, 4, 7, 9, 15, 0)));
        assert!(!s.matches(utc(2030, 2, 1, 9, 0, 1))); // second 1
        assert!(!s.matches(utc(2030, 2, 1, 9, 5, 0))); // minute 5
        assert!(!s.matches(utc(2030, 2, 2, 9, 0, 0))); // day 2
        assert!(!s.matches(utc(2030, 3, 1, 9, 0, 0))); // month 3
        assert!(!s.matches(utc(2031, 2, 1, 9, 0, 0))); // year 2031
        assert!(!s.matches(utc(2045, 2, 1, 9, 0, 0))); // past the range
        assert!(!s.matches(utc(2030, 2, 1, 10, 0, 0))); // hour 10
    }

    #[test]
    fn sunday_is_zero_and_saturday_six() {
        let sunday = utc(2026, 11, 22, 12, 0, 0);
        assert!(sched("* * * * * 0 *").matches(sunday));
        assert!(!sched("* * * * * 1-6 *").matches(sunday));
        assert!(sched("* * * * * 6 *").matches(sunday - 86_400));
        assert!(sched("* * * * * 1 *").matches(sunday + 86_400));
        // Weekdays only.
        let weekdays = sched("* * * * * 1-5 *");
        assert!(!weekdays.matches(sunday));
        assert!(!weekdays.matches(sunday - 86_400));
        for d in 1..=5 {
            assert!(weekdays.matches(sunday + d * 86_400));
        }
    }

    #[test]
    fn day_of_month_and_day_of_week_are_anded() {
        // "the 13th, and a Friday": 2026-02-13 and 2026-03-13 are Fridays.
        let s = sched("* * * 13 * 5 *");
        assert!(s.matches(utc(2026, 2, 13, 12, 0, 0)));
        assert!(!s.matches(utc(2026, 1, 13, 12, 0, 0))); // a Tuesday
        assert!(!s.matches(utc(2026, 2, 20, 12, 0, 0))); // another Friday
    }

    #[test]
    fn years_outside_2000_9999_never_match() {
        let s = sched("* * * * * * *");
        assert!(s.matches(utc(2000, 1, 1, 0, 0, 0)));
        assert!(!s.matches(utc(2000, 1, 1, 0, 0, 0) - 1));
        assert!(s.matches(utc(9999, 12, 31, 23, 59, 59)));
        assert!(!s.matches(utc(9999, 12, 31, 23, 59, 59) + 1));
        assert!(!s.matches(i64::MIN));
        assert!(!s.matches(i64::MAX));
        let y = sched("* * * * * * 2001");
        assert!(y.matches(utc(2001, 6, 1, 0, 0, 0)));
        assert!(!y.matches(utc(2026, 6, 1, 0, 0, 0)));
    }

    #[test]
    fn tabs_and_runs_of_blanks_separate_fields() {
        assert!(sched(" *  * *\t* * * * ").matches(utc(2026, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn malformed_entries_are_rejected() {
        for (bad, want) in [
            ("", "7 fields"),
            ("* * * * * *", "found 6"),
            ("* * * * * * * *", "found 8"),
            ("60 * * * * * *", "second field '60': value 60 outside 0-59"),
            ("* 60 * * * * *", "minute"),
            ("* * 24 * * * *", "hour field '24'"),
            ("* * * 0 * * *", "day-of-month field '0'"),
            ("* * * 32 * * *", "day-of-month"),
            ("* * * * 0 * *", "month field '0'"),
            ("* * * * 13 * *", "month"),
            ("* * * * * 7 *", "day-of-week field '7'"),
            ("* * * * * * 1999", "year field '1999'"),
            ("* * * * * * 10000", "at most 4 digits"),
            ("* * 17-8 * * * *", "runs backwards"),
            ("*/0 * * * * * *", "step must be at least 1"),
            ("5/2 * * * * * *", "needs '*' or a range"),
            ("1,,2 * * * * * *", "not a number"),
            ("1, * * * * * *", "not a number"),
            ("-1 * * * * * *", "not a number"),
            ("+1 * * * * * *", "not a number"),
            ("* * * * * MON *", "not a number"),
            ("* * * * JAN * *", "not a number"),
            ("? * * * * * *", "not a number"),
            ("* * * L * * *", "not a number"),
            ("* * * * * 5#3 *", "not a number"),
            ("1-2-3 * * * * * *", "not a number"),
            ("*/2/3 * * * * * *", "not a number"),
            ("** * * * * * *", "not a number"),
            ("* * * * * * ２０２６", "not a number"),
        ] {
            match Schedule::parse(bad) {
                Ok(_) => panic!("accepted '{bad}'"),
                Err(e) => assert!(e.contains(want), "'{bad}': got '{e}', want '{want}'"),
            }
        }
    }

    #[test]
    fn leading_zeros_and_full_ranges_are_accepted() {
        let s = sched("00 00 08 01 01 00-06 2026");
        assert!(s.matches(utc(2026, 1, 1, 8, 0, 0)));
        sched("0-59 0-59 0-23 1-31 1-12 0-6 2000-9999");
        sched("*/59 */60 */100 * * * */9999");
    }
}

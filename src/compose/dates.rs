//! Dates for templates: parsing the date forms a CSV usually holds (ISO 8601 `2024-03-05`,
//! optionally with a time, or `2024/03/05`) and formatting them with a small strftime subset in
//! English. Pure functions on the proleptic Gregorian calendar, in UTC; no time-zone database
//! and no I/O beyond reading the clock for "today".

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date and time of day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A moment in Unix milliseconds as ISO 8601 in UTC, to the second: `2026-12-07T17:18:00Z`
/// (what spreadsheets and scripts read without being told the zone).
pub fn iso8601_utc(ms: i64) -> String {
    let t = DateTime::from_unix(ms.div_euclid(1_000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Days since 1970-01-01 of a civil date (the well-known era-based conversion).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl DateTime {
    pub fn now_utc() -> DateTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or(0);
        DateTime::from_unix(secs)
    }

    pub fn from_unix(secs: i64) -> DateTime {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let in_day = secs.rem_euclid(86_400) as u32;
        DateTime {
            year,
            month,
            day,
            hour: in_day / 3_600,
            minute: in_day % 3_600 / 60,
            second: in_day % 60,
        }
    }

    /// Parses `2024-03-05`, `2024/03/05`, `2024-03-05 14:30`, `2024-03-05T14:30:00` (a trailing
    /// `Z` or offset is ignored: dates are shown as written).
    pub fn parse(text: &str) -> Option<DateTime> {
        let text = text.trim();
        let (date, time) = match text.find(['T', ' ']) {
            Some(at) => (&text[..at], Some(text[at + 1..].trim())),
            None => (text, None),
        };
        let mut pieces = date.split(['-', '/']);
        let year: i64 = pieces.next()?.parse().ok()?;
        let month: u32 = pieces.next()?.parse().ok()?;
        let day: u32 = pieces.next()?.parse().ok()?;
        if pieces.next().is_some()
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || !(1..=9999).contains(&year)
        {
            return None;
        }
        let (mut hour, mut minute, mut second) = (0, 0, 0);
        if let Some(time) = time.filter(|time| !time.is_empty()) {
            let time = time
                .split(['Z', '+', 'z'])
                .next()
                .unwrap_or(time)
                .split('.')
                .next()
                .unwrap_or(time);
            let mut parts = time.split(':');
            hour = parts.next()?.parse().ok()?;
            minute = parts.next()?.parse().ok()?;
            second = match parts.next() {
                Some(second) => second.parse().ok()?,
                None => 0,
            };
            if hour > 23 || minute > 59 || second > 60 {
                return None;
            }
        }
        Some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    fn weekday(&self) -> usize {
        // 1970-01-01 was a Thursday (index 4, Sunday = 0).
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as usize
    }

    fn day_of_year(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) - days_from_civil(self.year, 1, 1) + 1
    }

    /// Formats with `%Y %y %m %d %e %B %b %A %a %H %M %S %j %%`; anything else after `%` is an
    /// error naming it, so a typo is not silently printed to a million people.
    pub fn format(&self, pattern: &str) -> Result<String, String> {
        let mut out = String::with_capacity(pattern.len() + 8);
        let mut chars = pattern.chars();
        let month_name = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("");
        let weekday_name = WEEKDAYS.get(self.weekday()).copied().unwrap_or("");
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let _ = match chars.next() {
                Some('Y') => write!(out, "{:04}", self.year),
                Some('y') => write!(out, "{:02}", self.year.rem_euclid(100)),
                Some('m') => write!(out, "{:02}", self.month),
                Some('d') => write!(out, "{:02}", self.day),
                Some('e') => write!(out, "{}", self.day),
                Some('B') => write!(out, "{month_name}"),
                Some('b') => write!(out, "{}", month_name.get(..3).unwrap_or("")),
                Some('A') => write!(out, "{weekday_name}"),
                Some('a') => write!(out, "{}", weekday_name.get(..3).unwrap_or("")),
                Some('H') => write!(out, "{:02}", self.hour),
                Some('M') => write!(out, "{:02}", self.minute),
                Some('S') => write!(out, "{:02}", self.second),
                Some('j') => write!(out, "{:03}", self.day_of_year()),
                Some('%') => write!(out, "%"),
                Some(other) => {
                    return Err(format!(
                        "\"%{other}\" is not a date format; use %Y %y %m %d %e %B %b %A %a %H %M %S %j"
                    ));
                }
                None => return Err("the date format ends with a lone \"%\"".to_string()),
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, pattern: &str, expected: &str) {
        let date = DateTime::parse(input).unwrap();
        assert_eq!(date.format(pattern).unwrap(), expected, "{input} {pattern}");
    }

    #[test]
    fn moments_read_as_iso_8601_in_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(1_709_647_199_999), "2024-03-05T13:59:59Z");
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_and_formats() {
        check("2024-03-05", "%d %B %Y", "05 March 2024");
        check("2024/03/05", "%e %b %y", "5 Mar 24");
        check("2024-02-29T14:30:09Z", "%A %H:%M:%S", "Thursday 14:30:09");
        check("2000-12-31 23:59", "%j %a %%", "366 Sun %");
        check("1970-01-01", "%A", "Thursday");
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "05/03/2024",
            "tomorrow",
            "2024-1-1 25:00",
        ] {
            assert!(DateTime::parse(bad).is_none(), "{bad}");
        }
        assert!(DateTime::parse("2024-01-01").unwrap().format("%Q").is_err());
        assert!(
            DateTime::parse("2024-01-01")
                .unwrap()
                .format("50%")
                .is_err()
        );
    }

    #[test]
    fn unix_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 11_016, 19_787, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let date = DateTime::from_unix(1_709_647_200);
        assert_eq!(date.format("%Y-%m-%d %H:%M").unwrap(), "2024-03-05 14:00");
    }
}

//! Human durations in campaign files ("90s", "5m", "2h", "1d"). Pure parsing; knows nothing of
//! where the durations are used.

use std::time::Duration;

/// Parses `"<number><unit>"` with unit `s`, `m`, `h` or `d`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "\"{text}\" is not a duration; write a number and a unit, like \"30s\", \"5m\" or \"2h\""
        ));
    }
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("\"{text}\" is too large a duration"))?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "\"{other}\" is not a time unit; use s, m, h or d (in \"{text}\")"
            ));
        }
    };
    count
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("\"{text}\" is too large a duration"))
}

/// The inverse of [`parse_duration`], choosing the largest unit that divides exactly.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<u64>) {
        assert_eq!(
            parse_duration(input).ok().map(|d| d.as_secs()),
            expected,
            "{input}"
        );
    }

    #[test]
    fn parses_units() {
        check("30", Some(30));
        check("30s", Some(30));
        check("5m", Some(300));
        check(" 2h ", Some(7_200));
        check("1d", Some(86_400));
        check("0s", Some(0));
        check("m", None);
        check("", None);
        check("5x", None);
        check("-5m", None);
        check("1.5h", None);
        check("99999999999999999999d", None);
    }

    #[test]
    fn formats_back() {
        for text in ["30s", "5m", "2h", "1d", "90s", "0s"] {
            let parsed = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(parsed), text);
        }
    }
}

//! The one way a duration is written on a command line or in an environment variable:
//! a whole number followed by a unit, `ms`, `s`, `m` or `h` (`500ms`, `15s`, `2m`, `1h`), or a
//! bare whole number, which counts seconds (`15` = `15s`). Flag names never carry a unit.
//!
//! Use [`parse`] (zero allowed, e.g. "0 disables the timer") or [`positive`] as clap's
//! `value_parser`; fields stay plain [`std::time::Duration`]s.

use std::time::Duration;

/// Parses `<n>ms`, `<n>s`, `<n>m`, `<n>h` or a bare `<n>` (seconds). Zero is allowed.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let bad = || format!("{text:?} is not a duration like 500ms, 15s, 2m, 1h or 15 (seconds)");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(format!(
            "{text:?}: unknown unit {unit:?} (use ms, s, m or h; a bare number counts seconds)"
        )),
    }
}

/// Like [`parse`], but zero is refused.
pub fn positive(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_duration() {
        let ms = Duration::from_millis;
        let table = [
            ("500ms", Ok(ms(500))),
            ("15s", Ok(ms(15_000))),
            ("15", Ok(ms(15_000))),
            (" 7 ", Ok(ms(7_000))),
            ("2m", Ok(ms(120_000))),
            ("1h", Ok(ms(3_600_000))),
            ("0", Ok(Duration::ZERO)),
            ("0ms", Ok(Duration::ZERO)),
            ("", Err(())),
            ("s", Err(())),
            ("-1s", Err(())),
            ("1.5s", Err(())),
            ("2d", Err(())),
            ("1 s", Err(())),
            ("99999999999999999999", Err(())),
            ("18446744073709551615h", Err(())),
        ];
        for (text, want) in table {
            assert_eq!(parse(text).map_err(|_| ()), want, "{text:?}");
        }
    }

    #[test]
    fn positive_refuses_zero_only() {
        assert!(positive("0s").unwrap_err().contains("longer than zero"));
        assert!(positive("0").is_err());
        assert_eq!(positive("1ms"), Ok(Duration::from_millis(1)));
        assert!(positive("x").unwrap_err().contains("not a duration"));
    }
}

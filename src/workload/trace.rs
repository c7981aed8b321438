//! Recorded traces: reading a CSV of arrivals and lengths (ours or Azure's layout)
//! into offsets from the first request, with located errors.

use crate::error::ConfigError;
use crate::time::Dur;
use std::path::Path;

/// A recorded trace: arrival offsets from the first request, prompt and output tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// (arrival offset, input tokens, output tokens), in arrival order.
    pub rows: Vec<(Dur, u32, u32)>,
}

/// Reads a trace CSV. Two layouts are accepted, told apart by the header:
/// `arrival_s,input_tokens,output_tokens` (seconds from any origin), or Azure's
/// `TIMESTAMP,ContextTokens,GeneratedTokens` (`YYYY-MM-DD hh:mm:ss.fffffff`). Rows
/// are sorted by time and offset so the first request arrives at t = 0; `time_scale`
/// divides the gaps (2 replays twice as fast).
pub fn read_trace(path: &Path, time_scale: f64, field: &str) -> Result<Trace, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, field, format!("cannot read trace file: {e}")))?;
    parse_trace(&text, time_scale, &file, field)
}

/// Parses the text of a trace CSV (see [`read_trace`]); `file` names it in messages,
/// which carry the line and column of the first bad value.
pub fn parse_trace(
    text: &str,
    time_scale: f64,
    file: &str,
    field: &str,
) -> Result<Trace, ConfigError> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        return Err(ConfigError::new(
            file,
            field,
            format!("time_scale {time_scale} is not a finite number > 0"),
        ));
    }
    // A byte-order mark, as spreadsheet programs write, is not part of the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| {
        ConfigError::new(
            file,
            field,
            "trace file is empty; expected a header `arrival_s,input_tokens,output_tokens` or `TIMESTAMP,ContextTokens,GeneratedTokens` and one row per request",
        )
    })?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_lowercase()).collect();
    let azure = cols == ["timestamp", "contexttokens", "generatedtokens"];
    if !azure && cols != ["arrival_s", "input_tokens", "output_tokens"] {
        return Err(ConfigError::new(
            file,
            field,
            format!(
                "unknown header {:?}; expected `arrival_s,input_tokens,output_tokens` or `TIMESTAMP,ContextTokens,GeneratedTokens`",
                short(header)
            ),
        )
        .at(1, 1));
    }
    let mut rows: Vec<(f64, u32, u32)> = Vec::new();
    for (n, line) in lines {
        let lineno = n + 1;
        let parts: Vec<&str> = line.split(',').collect();
        if parts.len() != 3 {
            return Err(ConfigError::new(
                file,
                field,
                format!(
                    "expected 3 comma-separated columns, got {}: {:?}",
                    parts.len(),
                    short(line)
                ),
            )
            .at(lineno, 1));
        }
        // Column (from 1, in characters) where part k starts.
        let col = |k: usize| -> usize {
            parts[..k]
                .iter()
                .map(|p| p.chars().count() + 1)
                .sum::<usize>()
                + 1
                + (parts[k].chars().count() - parts[k].trim_start().chars().count())
        };
        let bad = |k: usize, what: &str| {
            ConfigError::new(
                file,
                field,
                format!("{what}, got {:?}", short(parts[k].trim())),
            )
            .at(lineno, col(k))
        };
        let t = if azure {
            parse_timestamp(parts[0].trim())
                .ok_or_else(|| bad(0, "TIMESTAMP must be `YYYY-MM-DD hh:mm:ss[.fraction]`"))?
        } else {
            parts[0]
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(0, "arrival_s must be a finite number >= 0"))?
        };
        let tok = |s: &str| s.trim().parse::<u32>().ok().filter(|v| *v >= 1);
        let i = tok(parts[1])
            .ok_or_else(|| bad(1, "input tokens must be an integer from 1 to 4294967295"))?;
        let o = tok(parts[2])
            .ok_or_else(|| bad(2, "output tokens must be an integer from 1 to 4294967295"))?;
        rows.push((t, i, o));
    }
    if rows.is_empty() {
        return Err(ConfigError::new(
            file,
            field,
            "trace file has a header but no rows",
        ));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t0 = rows[0].0;
    Ok(Trace {
        rows: rows
            .into_iter()
            .map(|(t, i, o)| (Dur::from_secs_f64((t - t0) / time_scale), i, o))
            .collect(),
    })
}

/// At most 60 characters of `s`, for messages.
fn short(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(57).collect::<String>())
    }
}

/// Seconds since 1970 of `YYYY-MM-DD hh:mm:ss[.fraction]` (UTC, proleptic Gregorian).
fn parse_timestamp(s: &str) -> Option<f64> {
    let (date, time) = s.split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some()
        || !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let mut t = time.trim().split(':');
    let (hh, mm) = (
        t.next()?.parse::<u32>().ok()?,
        t.next()?.parse::<u32>().ok()?,
    );
    let ss = t.next()?.parse::<f64>().ok()?;
    if t.next().is_some() || hh > 23 || mm > 59 || !(ss.is_finite() && (0.0..61.0).contains(&ss)) {
        return None;
    }
    let (hh, mm) = (hh as f64, mm as f64);
    // Days from civil (H. Hinnant's algorithm, public domain description).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days as f64 * 86400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_seconds() {
        let a = parse_timestamp("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_timestamp("2023-11-16 18:17:04.0319600").unwrap();
        assert!((b - a - 0.052).abs() < 1e-6);
        assert_eq!(parse_timestamp("1970-01-02 00:00:00").unwrap(), 86400.0);
        assert!(parse_timestamp("2023-13-01 00:00:00").is_none());
    }
}

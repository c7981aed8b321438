//! Recorded traces: reading a CSV of arrivals and lengths (ours or Azure's layout)
//! into offsets from the first request, with located errors. Our layout may carry
//! optional columns saying what a request shares: `prefix_group` and
//! `prefix_tokens` (a group's shared prefix, its length), or `session_id` (a
//! multi-turn conversation: each row's prefix is the previous row of its session).

use crate::error::ConfigError;
use crate::time::Dur;
use std::collections::HashMap;
use std::path::Path;

/// A recorded trace: arrival offsets from the first request, prompt and output tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// (arrival offset, input tokens, output tokens), in arrival order.
    pub rows: Vec<(Dur, u32, u32)>,
    /// What each row shares, in the same order; empty when the trace has no prefix
    /// or session column.
    pub prefixes: Vec<RowPrefix>,
}

/// What one trace row shares with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowPrefix {
    /// Its prefix group (numbered from 0 in order of first arrival; for a session,
    /// the session's number).
    pub prefix: Option<u32>,
    /// Tokens of its prompt shared with the group: the `prefix_tokens` column, or a
    /// session turn's previous turn's prompt + output (`None` for a session's first
    /// turn: its whole prompt).
    pub prefix_tokens: Option<u32>,
    /// Its session, if the trace has a session column.
    pub session: Option<u32>,
    /// Whether a later row of its session follows.
    pub keep_context: bool,
}

/// Optional columns of our layout.
const OPTIONAL: [&str; 3] = ["prefix_group", "prefix_tokens", "session_id"];

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
    if !azure && (cols.len() < 3 || cols[..3] != ["arrival_s", "input_tokens", "output_tokens"]) {
        return Err(ConfigError::new(
            file,
            field,
            format!(
                "unknown header {:?}; expected `arrival_s,input_tokens,output_tokens` (optionally followed by `prefix_group,prefix_tokens` or `session_id`) or `TIMESTAMP,ContextTokens,GeneratedTokens`",
                short(header)
            ),
        )
        .at(1, 1));
    }
    let extra = optional_columns(&cols[3.min(cols.len())..], file, field)?;
    let ncols = cols.len();
    let mut rows: Vec<(f64, u32, u32)> = Vec::new();
    // Per row: (line, prefix group or session name, prefix tokens), when the
    // trace has those columns.
    let mut named: Vec<(usize, Option<String>, Option<u32>)> = Vec::new();
    for (n, line) in lines {
        let lineno = n + 1;
        let parts: Vec<&str> = line.split(',').collect();
        if parts.len() != ncols {
            return Err(ConfigError::new(
                file,
                field,
                format!(
                    "expected {ncols} comma-separated columns, got {}: {:?}",
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
        if let Some(x) = extra {
            let name = parts[x.name].trim();
            let name = (!name.is_empty()).then(|| name.to_string());
            let tokens = match x.tokens {
                None => None,
                Some(k) if parts[k].trim().is_empty() && name.is_none() => None,
                Some(k) => Some(
                    tok(parts[k])
                        .filter(|&p| p <= i)
                        .ok_or_else(|| {
                            bad(
                                k,
                                "prefix_tokens must be an integer from 1 to the row's input_tokens (empty only without a prefix_group)",
                            )
                        })?,
                ),
            };
            if let (None, Some(k), Some(_)) = (&name, x.tokens, tokens) {
                return Err(bad(
                    k,
                    "prefix_tokens needs a prefix_group on its row (empty here)",
                ));
            }
            named.push((lineno, name, tokens));
        }
        rows.push((t, i, o));
    }
    if rows.is_empty() {
        return Err(ConfigError::new(
            file,
            field,
            "trace file has a header but no rows",
        ));
    }
    // Sort by time (stably: rows at one instant keep the file's order), the
    // prefix columns along.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a].0.total_cmp(&rows[b].0));
    let prefixes = match extra {
        None => Vec::new(),
        Some(x) => row_prefixes(&order, &rows, &named, x.session, file, field)?,
    };
    let t0 = rows[order[0]].0;
    Ok(Trace {
        rows: order
            .iter()
            .map(|&k| {
                let (t, i, o) = rows[k];
                (Dur::from_secs_f64((t - t0) / time_scale), i, o)
            })
            .collect(),
        prefixes,
    })
}

/// Where the optional columns are.
#[derive(Debug, Clone, Copy)]
struct Extra {
    /// `prefix_group` or `session_id`.
    name: usize,
    /// `prefix_tokens`.
    tokens: Option<usize>,
    /// Whether `name` is `session_id`.
    session: bool,
}

/// The optional columns after the first three: `prefix_group` with
/// `prefix_tokens`, or `session_id`, or none.
fn optional_columns(
    cols: &[String],
    file: &str,
    field: &str,
) -> Result<Option<Extra>, ConfigError> {
    let err = |msg: String| Err(ConfigError::new(file, field, msg).at(1, 1));
    for (k, c) in cols.iter().enumerate() {
        if !OPTIONAL.contains(&c.as_str()) {
            return err(format!(
                "unknown column {:?}; allowed after arrival_s,input_tokens,output_tokens: `prefix_group,prefix_tokens` or `session_id`",
                short(c)
            ));
        }
        if cols[..k].contains(c) {
            return err(format!("column {c:?} is given twice"));
        }
    }
    let at = |name: &str| cols.iter().position(|c| c == name).map(|k| k + 3);
    match (at("prefix_group"), at("prefix_tokens"), at("session_id")) {
        (None, None, None) => Ok(None),
        (Some(g), Some(t), None) => Ok(Some(Extra {
            name: g,
            tokens: Some(t),
            session: false,
        })),
        (None, None, Some(s)) => Ok(Some(Extra {
            name: s,
            tokens: None,
            session: true,
        })),
        (_, _, Some(_)) => err(
            "give either `prefix_group,prefix_tokens` or `session_id`, not both (a session's prefix is its previous turn)".into(),
        ),
        (Some(_), None, _) => err("column prefix_group needs a prefix_tokens column (the shared prefix's length)".into()),
        (None, Some(_), _) => err("column prefix_tokens needs a prefix_group column".into()),
    }
}

/// What each row (in time `order`) shares: groups and sessions numbered from 0 in
/// order of first arrival; a group's rows must agree on its length, a session
/// row's prefix is its session's previous row (prompt + output).
fn row_prefixes(
    order: &[usize],
    rows: &[(f64, u32, u32)],
    named: &[(usize, Option<String>, Option<u32>)],
    session: bool,
    file: &str,
    field: &str,
) -> Result<Vec<RowPrefix>, ConfigError> {
    // Per name: (number, prefix tokens of its first row or previous turn's context,
    // index in `out` of its last row).
    let mut seen: HashMap<&str, (u32, Option<u32>, usize)> = HashMap::new();
    let mut out: Vec<RowPrefix> = Vec::with_capacity(order.len());
    for &k in order {
        let (line, name, tokens) = &named[k];
        let Some(name) = name.as_deref() else {
            out.push(RowPrefix::default());
            continue;
        };
        let (_, i, o) = rows[k];
        let next = seen.len() as u32;
        let pos = out.len();
        match seen.get_mut(name) {
            None => {
                let first = if session {
                    Some(i.saturating_add(o))
                } else {
                    *tokens
                };
                seen.insert(name, (next, first, pos));
                out.push(RowPrefix {
                    prefix: Some(next),
                    prefix_tokens: if session { None } else { *tokens },
                    session: session.then_some(next),
                    keep_context: false,
                });
            }
            Some((id, carried, last)) if session => {
                out[*last].keep_context = true;
                out.push(RowPrefix {
                    prefix: Some(*id),
                    prefix_tokens: *carried,
                    session: Some(*id),
                    keep_context: false,
                });
                *carried = Some(i.saturating_add(o));
                *last = pos;
            }
            Some((id, len, _)) => {
                if *len != *tokens {
                    return Err(ConfigError::new(
                        file,
                        field,
                        format!(
                            "prefix_group {name:?} has prefix_tokens {} here but {} on its first row; a group's rows share one prefix length",
                            tokens.unwrap_or(0),
                            len.unwrap_or(0)
                        ),
                    )
                    .at(*line, 1));
                }
                out.push(RowPrefix {
                    prefix: Some(*id),
                    prefix_tokens: *tokens,
                    session: None,
                    keep_context: false,
                });
            }
        }
    }
    Ok(out)
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
    fn session_rows_carry_the_previous_turn_as_prefix() {
        // Out of order in the file; sorted by time: a@0, b@1, a@2, a@5.
        let text = "arrival_s,input_tokens,output_tokens,session_id\n\
                    2,180,30,a\n0,100,50,a\n1,40,8,b\n5,300,10,a\n";
        let t = parse_trace(text, 1.0, "t.csv", "workload.trace").unwrap();
        let lens: Vec<(u32, u32)> = t.rows.iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(lens, [(100, 50), (40, 8), (180, 30), (300, 10)]);
        let p = |prefix, tokens, session, keep| RowPrefix {
            prefix: Some(prefix),
            prefix_tokens: tokens,
            session: Some(session),
            keep_context: keep,
        };
        assert_eq!(
            t.prefixes,
            [
                p(0, None, 0, true),
                p(1, None, 1, false),
                p(0, Some(150), 0, true),
                p(0, Some(210), 0, false),
            ]
        );
    }

    #[test]
    fn prefix_groups_are_numbered_by_first_arrival() {
        let text = "arrival_s,input_tokens,output_tokens,prefix_group,prefix_tokens\n\
                    1,60,4,sys-b,20\n0,60,4,sys-a,40\n2,60,4,,\n3,60,4,sys-b,20\n";
        let t = parse_trace(text, 1.0, "t.csv", "workload.trace").unwrap();
        let got: Vec<(Option<u32>, Option<u32>)> = t
            .prefixes
            .iter()
            .map(|p| (p.prefix, p.prefix_tokens))
            .collect();
        assert_eq!(
            got,
            [
                (Some(0), Some(40)),
                (Some(1), Some(20)),
                (None, None),
                (Some(1), Some(20))
            ]
        );
        assert!(t
            .prefixes
            .iter()
            .all(|p| p.session.is_none() && !p.keep_context));
        // Without the optional columns nothing is recorded.
        let plain = parse_trace(
            "arrival_s,input_tokens,output_tokens\n0,1,1\n",
            1.0,
            "t",
            "f",
        );
        assert!(plain.unwrap().prefixes.is_empty());
    }

    #[test]
    fn timestamps_parse_to_seconds() {
        let a = parse_timestamp("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_timestamp("2023-11-16 18:17:04.0319600").unwrap();
        assert!((b - a - 0.052).abs() < 1e-6);
        assert_eq!(parse_timestamp("1970-01-02 00:00:00").unwrap(), 86400.0);
        assert!(parse_timestamp("2023-13-01 00:00:00").is_none());
    }
}

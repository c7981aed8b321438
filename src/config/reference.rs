//! What a declared key allows, in words (the same words in error messages and in the
//! reference), and the configuration reference table generated from the declaration
//! for `infersim schema` and README.md.

use super::key::{key, FloatRange, Key, Kind};
use super::schema::{DISTS, DIST_FIXED, DIST_NORMAL, DIST_UNIFORM, TOP};

/// A number as a person writes it: `0.5`, `2048`, `1e-6`, `1e300`, `nan`.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e6).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `"a", "b", "c"`.
pub fn quoted_list(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "an integer from 1 to 4096", "an integer >= 1".
pub fn int_range(lo: i64, hi: i64) -> String {
    if hi == i64::MAX {
        format!("an integer >= {lo}")
    } else {
        format!("an integer from {lo} to {hi}")
    }
}

/// A float range with its unit, in words: `0.1 to 1000 ms`, `a fraction in (0, 1]`.
pub fn float_range(r: FloatRange, unit: &str) -> String {
    if !r.lo_open && !r.hi_open {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        format!("{} to {}{unit}", fmt_num(r.lo), fmt_num(r.hi))
    } else {
        let noun = if unit.is_empty() || unit == "tokens" {
            "number"
        } else {
            unit
        };
        format!(
            "a {noun} in {}{}, {}{}",
            if r.lo_open { "(" } else { "[" },
            fmt_num(r.lo),
            fmt_num(r.hi),
            if r.hi_open { ")" } else { "]" }
        )
    }
}

/// What `kind` allows, in words (`unit` for float ranges).
pub fn allowed(kind: Kind, unit: &str) -> String {
    match kind {
        Kind::Str([]) => "a string".into(),
        Kind::Str(list) => quoted_list(list),
        Kind::Bool => "true or false".into(),
        Kind::Int(lo, hi) => int_range(lo, hi),
        Kind::Ints(lo, hi) => format!("an array of integers, each {}", int_range(lo, hi)),
        Kind::Float(r) => float_range(r, unit),
        Kind::Dist => "a table such as { dist = \"fixed\", value = 128 }".into(),
        Kind::Table(_) => "a table".into(),
        Kind::Tables(_) => "an array of tables ([[...]])".into(),
    }
}

/// Start of the generated table in README.md.
pub const README_BEGIN: &str =
    "<!-- BEGIN GENERATED: config reference (infersim schema; do not edit by hand) -->";
/// End of the generated table in README.md.
pub const README_END: &str = "<!-- END GENERATED: config reference -->";

/// `text` (README.md) with the part between [`README_BEGIN`] and [`README_END`]
/// replaced by [`reference_table`]; `None` when the markers are missing.
pub fn with_reference_table(text: &str) -> Option<String> {
    let start = text.find(README_BEGIN)? + README_BEGIN.len();
    let end = start + text[start..].find(README_END)?;
    Some(format!(
        "{}\n{}{}",
        &text[..start],
        reference_table(),
        &text[end..]
    ))
}

/// The configuration reference as a Markdown table: one row per key, tables before
/// their keys, the length-distribution keys last.
pub fn reference_table() -> String {
    fn cell(s: &str) -> String {
        s.replace('|', "\\|")
    }
    fn applies(k: &Key) -> String {
        k.applies
            .iter()
            .map(|c| {
                let vals: Vec<String> = c.values.iter().map(|v| format!("`{v}`")).collect();
                format!("{} = {}", c.key, vals.join(" / "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn row(path: &str, k: &Key, when: Option<String>, out: &mut String) {
        let allowed = match k.kind {
            Kind::Table(_) => "table".to_string(),
            Kind::Tables(_) => "array of tables".to_string(),
            // The unit has its own column.
            Kind::Float(r) if !r.lo_open && !r.hi_open => float_range(r, ""),
            kind => allowed(kind, k.unit),
        };
        let unit = match k.kind {
            Kind::Float(r) if r.lo_open || r.hi_open => "",
            _ => k.unit,
        };
        let default = match k.required {
            Some(_) => "**required**",
            None => k.default,
        };
        out.push_str(&format!(
            "| `{path}` | {} | {} | {} | {} | {} |\n",
            cell(&allowed),
            cell(unit),
            cell(default),
            cell(&when.unwrap_or_else(|| applies(k))),
            cell(k.doc)
        ));
    }
    fn walk(prefix: &str, keys: &[Key], out: &mut String) {
        for k in keys {
            let p = if prefix.is_empty() {
                k.name.to_string()
            } else {
                format!("{prefix}.{}", k.name)
            };
            row(&p, k, None, out);
            if let Kind::Table(t) | Kind::Tables(t) = k.kind {
                walk(&p, t, out);
            }
        }
    }
    let mut out = String::from(
        "| Key | Allowed | Unit | Default | Applies when | What it sets |\n|---|---|---|---|---|---|\n",
    );
    walk("", TOP, &mut out);
    let dist = key("dist", Kind::Str(DISTS))
        .req("")
        .doc("Distribution of `input_tokens` / `output_tokens` (`<lengths>`).");
    row("<lengths>.dist", &dist, Some(String::new()), &mut out);
    for (dists, keys) in [
        ("`fixed`", DIST_FIXED),
        ("`uniform`", DIST_UNIFORM),
        ("`normal` / `lognormal`", DIST_NORMAL),
    ] {
        for k in keys {
            let path = format!("<lengths>.{}", k.name);
            row(&path, k, Some(format!("dist = {dists}")), &mut out);
        }
    }
    out
}

//! Checking experiment files before anything runs, against the declaration of every
//! key in [`crate::config::schema`]: types, integer and float ranges, allowed strings,
//! unknown keys (with suggestions), missing keys and settings that do not apply to the
//! selected arrival, sharing mode or policy; and where in the file a value came from,
//! so that every message reads `file:line:column: field: message`.
//!
//! [`check_schema`] walks one resolved sweep point (a plain TOML table) and reports
//! every key that is unknown, missing, of the wrong type, outside its range or not
//! applicable, each with its dotted path, the value given and what is allowed.
//! [`Spans`] keeps the file's text parsed with `toml_edit`, which records where each
//! key and value starts, and maps a dotted path back to a line and column: to the
//! `[sweep]` entry or `[[variant]]` table that set the value when one did, else to the
//! key or value in the body of the file, else to the table that lacks a required key.
//!
//! Over 600 lines: the schema walk and the span finder (`Spans`) that locates every
//! message in the file; the span finder is the part to move out next.

pub use super::schema::{
    allowed, fmt_num, int_range, quoted_list, Cond, Key, Kind, ARRIVALS, DISTS,
    MAX_INSTANCES_PER_GPU, MAX_POINTS, MAX_REPLICATIONS, MAX_SEED, POLICIES, ROUTERS, SAMPLINGS,
    SHARING, STACKS, THINKS, TOP,
};
use super::schema::{dist_keys, float_range};
use crate::error::ConfigError;
use toml_edit::{ImDocument, Item, TableLike};

/// The old name of a declared key.
pub type Field = Key;

/// "a string", "an integer", ...: the TOML type of `v`.
pub fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// `v` as TOML text, at most 60 characters.
pub fn show(v: &toml::Value) -> String {
    let s = match v {
        toml::Value::Table(t) if t.is_empty() => "{}".to_string(),
        toml::Value::Table(t) => {
            let inner: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        other => other.to_string(),
    };
    if s.chars().count() <= 60 {
        s
    } else {
        format!("{}...", s.chars().take(57).collect::<String>())
    }
}

/// Edit distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `names` to `given`, if close enough to be a likely typo.
pub fn suggest<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let g = given.to_lowercase().replace('-', "_");
    names
        .into_iter()
        .map(|n| (distance(&g, &n.replace('-', "_")), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4) && *d < n.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What one check of a file knows besides the table: the file's name, and which
/// paths differ between its sweep points.
struct Ctx<'a> {
    file: &'a str,
    varied: &'a [String],
}

impl Ctx<'_> {
    fn err(&self, path: &str, msg: String) -> ConfigError {
        ConfigError::new(self.file, path, msg)
    }

    /// Whether `path` (or a table above it) differs between sweep points.
    fn is_varied(&self, path: &str) -> bool {
        self.varied.iter().any(|v| {
            path == v || (path.starts_with(v.as_str()) && path[v.len()..].starts_with('.'))
        })
    }
}

/// Checks `v` at `path` against `kind` (`unit` names float ranges); appends errors.
fn check_value(
    cx: &Ctx,
    path: &str,
    v: &toml::Value,
    kind: Kind,
    unit: &str,
    out: &mut Vec<ConfigError>,
) {
    let wrong = |out: &mut Vec<ConfigError>| {
        out.push(cx.err(
            path,
            format!(
                "got {} ({}), allowed: {}",
                show(v),
                type_name(v),
                allowed(kind, unit)
            ),
        ))
    };
    match (kind, v) {
        (Kind::Str(list), toml::Value::String(s)) => {
            if !list.is_empty() && !list.contains(&s.as_str()) {
                let hint = suggest(s, list.iter().copied())
                    .map(|n| format!(" (did you mean {n:?}?)"))
                    .unwrap_or_default();
                out.push(cx.err(
                    path,
                    format!("got {s:?}, allowed: {}{hint}", quoted_list(list)),
                ));
            }
        }
        (Kind::Bool, toml::Value::Boolean(_)) => {}
        (Kind::Int(lo, hi), toml::Value::Integer(i)) => {
            if *i < lo || *i > hi {
                out.push(cx.err(path, format!("got {i}, allowed: {}", int_range(lo, hi))));
            }
        }
        (Kind::Ints(lo, hi), toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                check_value(cx, &p, item, Kind::Int(lo, hi), unit, out);
            }
        }
        (Kind::Float(r), toml::Value::Integer(_) | toml::Value::Float(_)) => {
            let x = match v {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                _ => unreachable!("matched above"),
            };
            if !r.contains(x) {
                out.push(cx.err(
                    path,
                    format!(
                        "got {}, allowed: {}",
                        if x.is_finite() { fmt_num(x) } else { show(v) },
                        float_range(r, unit)
                    ),
                ));
            }
        }
        (Kind::Table(keys), toml::Value::Table(t)) => {
            let what = format!("[{path}]");
            check_table(cx, path, t, keys, &what, out)
        }
        (Kind::Dist, toml::Value::Table(t)) => check_dist(cx, path, t, out),
        (Kind::Tables(keys), toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match item {
                    toml::Value::Table(t) => {
                        check_table(cx, &p, t, keys, &format!("[[{path}]]"), out)
                    }
                    other => check_value(cx, &p, other, Kind::Table(keys), "", out),
                }
            }
        }
        _ => wrong(out),
    }
}

fn check_dist(cx: &Ctx, path: &str, t: &toml::Table, out: &mut Vec<ConfigError>) {
    let dist_path = join(path, "dist");
    let keys = match t.get("dist") {
        None => {
            out.push(cx.err(
                &dist_path,
                format!(
                    "is required: one of {}, for example {{ dist = \"fixed\", value = 128 }}",
                    quoted_list(DISTS)
                ),
            ));
            return;
        }
        Some(toml::Value::String(s)) => match dist_keys(s) {
            Some(keys) => keys,
            None => {
                check_value(cx, &dist_path, &t["dist"], Kind::Str(DISTS), "", out);
                return;
            }
        },
        Some(other) => {
            check_value(cx, &dist_path, other, Kind::Str(DISTS), "", out);
            return;
        }
    };
    let mut rest = t.clone();
    rest.remove("dist");
    let what = format!("{path} with dist = {}", t["dist"]);
    check_table(cx, path, &rest, keys, &what, out);
}

/// The first condition of `key` that the table `t` (at `path`) does not meet, with
/// the selecting key's value.
fn unmet<'k>(
    cx: &Ctx,
    path: &str,
    t: &toml::Table,
    keys: &[Key],
    key: &'k Key,
) -> Option<(&'k Cond, String)> {
    key.applies.iter().find_map(|c| {
        let value = match t.get(c.key) {
            Some(toml::Value::String(s)) => s.as_str(),
            // A selecting key of the wrong type is reported by itself.
            Some(_) => return None,
            None if c.default.is_empty() => return None,
            None => c.default,
        };
        // A value the selecting key does not allow is reported by that key itself,
        // so what depends on it is not judged.
        let known = match keys.iter().find(|k| k.name == c.key).map(|k| k.kind) {
            Some(Kind::Str(list)) => list.contains(&value),
            _ => false,
        };
        if !known || c.values.contains(&value) {
            return None;
        }
        if c.varied_ok && cx.is_varied(&join(path, c.key)) {
            return None;
        }
        Some((c, value.to_string()))
    })
}

/// Checks the keys of table `t` at `path` (`what` names it in messages).
fn check_table(
    cx: &Ctx,
    path: &str,
    t: &toml::Table,
    keys: &[Key],
    what: &str,
    out: &mut Vec<ConfigError>,
) {
    for (k, v) in t {
        let p = join(path, k);
        match keys.iter().find(|f| f.name == k) {
            Some(f) => match unmet(cx, path, t, keys, f) {
                Some((c, value)) => out.push(cx.err(
                    &p,
                    format!(
                        "does not apply to {} = {value:?} ({}); remove it",
                        c.key, c.note
                    ),
                )),
                None => check_value(cx, &p, v, f.kind, f.unit, out),
            },
            None => {
                let hint = suggest(k, keys.iter().map(|f| f.name))
                    .map(|n| format!("did you mean {n:?}? "))
                    .unwrap_or_default();
                out.push(cx.err(
                    &p,
                    format!(
                        "unknown key; {hint}allowed in {what}: {}",
                        keys.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    for f in keys {
        if let (Some(hint), None) = (f.required, t.get(f.name)) {
            out.push(cx.err(&join(path, f.name), format!("is missing; {hint}")));
        }
    }
}

/// Checks a resolved experiment table against the schema: every unknown or missing
/// key, wrong type, number out of range and setting that does not apply, with its
/// path. `varied` lists the dotted paths that differ between the file's sweep points
/// (sweep axes, keys set by `[[variant]]`s): a policy's settings table may be given
/// for a policy that is not selected in this point when `engine.policy` is one of
/// them (or when an `[[instance]]` selects that policy).
pub fn check_schema(file: &str, doc: &toml::Table, varied: &[String]) -> Vec<ConfigError> {
    let mut varied = varied.to_vec();
    let instance_policy = doc
        .get("instance")
        .and_then(toml::Value::as_array)
        .is_some_and(|a| a.iter().any(|i| i.get("policy").is_some()));
    if instance_policy {
        varied.push("engine.policy".into());
    }
    let cx = Ctx {
        file,
        varied: &varied,
    };
    let mut out = Vec::new();
    check_table(&cx, "", doc, TOP, "the top level", &mut out);
    out
}

/// Checks one value `v` of the declared key `key` at dotted `path` (its type and
/// range, and the keys of a table it holds), not the conditions on other keys.
pub fn check_key(file: &str, path: &str, key: &Key, v: &toml::Value) -> Vec<ConfigError> {
    let cx = Ctx { file, varied: &[] };
    let mut out = Vec::new();
    check_value(&cx, path, v, key.kind, key.unit, &mut out);
    out
}

/// Where an error's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The body of the experiment file (or not located).
    Body,
    /// A `[sweep]` entry.
    Sweep,
    /// A `[[variant]]` table.
    Variant,
}

/// Which `[sweep]` values and `[[variant]]` a sweep point was made of.
#[derive(Debug, Clone, Default)]
pub struct PointSources {
    /// (axis key, index of the value in its list), in the order they were applied.
    pub sweep: Vec<(String, usize)>,
    /// Index of the `[[variant]]`.
    pub variant: Option<usize>,
}

/// The text of an experiment file with the position of every key and value.
pub struct Spans<'a> {
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

/// The deepest key of `path` found under `item`: (depth, key start, item start).
fn find(item: &Item, path: &[&str]) -> (usize, Option<usize>, Option<usize>) {
    let mut cur = item;
    let mut found = (0, None, item.span().map(|s| s.start));
    for (i, seg) in path.iter().enumerate() {
        let Some(t) = cur.as_table_like() else {
            break;
        };
        let Some((k, v)) = t.get_key_value(seg) else {
            break;
        };
        found = (i + 1, k.span().map(|s| s.start), v.span().map(|s| s.start));
        cur = v;
    }
    found
}

/// `variant[3].engine.x` -> (3, "engine.x").
fn variant_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("variant[")?;
    let (n, rest) = rest.split_once(']')?;
    let n = n.parse().ok()?;
    Some((n, rest.strip_prefix('.').unwrap_or(rest)))
}

impl<'a> Spans<'a> {
    /// Parses `text` (already known to be valid TOML) keeping positions.
    pub fn new(text: &'a str) -> Spans<'a> {
        Spans {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    fn variant_table(&self, i: usize) -> Option<&dyn TableLike> {
        let item = self.doc.as_ref()?.as_table().get("variant")?;
        if let Some(a) = item.as_array_of_tables() {
            return a.get(i).map(|t| t as &dyn TableLike);
        }
        item.as_array()?
            .get(i)?
            .as_inline_table()
            .map(|t| t as &dyn TableLike)
    }

    fn variant_start(&self, i: usize) -> Option<usize> {
        let item = self.doc.as_ref()?.as_table().get("variant")?;
        let span = match item.as_array_of_tables() {
            Some(a) => a.get(i)?.span(),
            None => item.as_array()?.get(i)?.span(),
        };
        span.map(|s| s.start)
    }

    fn sweep_key(&self, key: &str) -> Option<usize> {
        let t = self
            .doc
            .as_ref()?
            .as_table()
            .get("sweep")?
            .as_table_like()?;
        let (k, _) = t.get_key_value(key)?;
        k.span().map(|s| s.start)
    }

    fn sweep_value(&self, key: &str, index: Option<usize>) -> Option<usize> {
        let t = self
            .doc
            .as_ref()?
            .as_table()
            .get("sweep")?
            .as_table_like()?;
        let (k, v) = t.get_key_value(key)?;
        let elem = index.and_then(|i| v.as_array()?.get(i)?.span());
        elem.map(|s| s.start)
            .or_else(|| v.span().map(|s| s.start))
            .or_else(|| k.span().map(|s| s.start))
    }

    /// Byte offset of the value (or, for `key`, the key) at `path` in the file, given
    /// the point's sources; and where the value came from.
    fn offset(&self, field: &str, key: bool, src: &PointSources) -> (Option<usize>, Origin) {
        let Some(doc) = &self.doc else {
            return (None, Origin::Body);
        };
        if field.starts_with('(') {
            return (None, Origin::Body);
        }
        if let Some(axis) = field.strip_prefix("sweep.") {
            return (self.sweep_value(axis, None), Origin::Sweep);
        }
        if let Some((i, rest)) = variant_field(field) {
            let Some(t) = self.variant_table(i) else {
                return (None, Origin::Variant);
            };
            let path: Vec<&str> = rest.split('.').filter(|s| !s.is_empty()).collect();
            let at = lookup_in(t, &path, key).or_else(|| self.variant_start(i));
            return (at, Origin::Variant);
        }
        let path: Vec<&str> = field.split('.').collect();
        // A sweep value replaces everything under its path: it wins when it covers the
        // field (the later axis when several do).
        for (axis, idx) in src.sweep.iter().rev() {
            let a: Vec<&str> = axis.split('.').collect();
            if a.len() <= path.len() && path[..a.len()] == a[..] {
                // An unknown key is the axis's fault, whatever its values.
                let at = if key {
                    self.sweep_key(axis)
                } else {
                    self.sweep_value(axis, Some(*idx))
                };
                return (at, Origin::Sweep);
            }
        }
        let (d_body, k_body, v_body) = find(doc.as_item(), &path);
        let body = pick(d_body, path.len(), key, k_body, v_body);
        if let Some(t) = src.variant.and_then(|i| self.variant_table(i)) {
            let (d, k, v) = find_in(t, &path);
            if d > 0 && d >= d_body {
                return (pick(d, path.len(), key, k, v), Origin::Variant);
            }
        }
        (if d_body > 0 { body } else { None }, Origin::Body)
    }

    /// `err` with its line and column filled in (when it concerns this file and the
    /// field is found), and where its value came from.
    pub fn locate(
        &self,
        err: ConfigError,
        file: &str,
        src: &PointSources,
    ) -> (ConfigError, Origin) {
        if err.file != file || err.line.is_some() {
            return (err, Origin::Body);
        }
        let key = err.message.starts_with("unknown key");
        match self.offset(&err.field, key, src) {
            (Some(off), origin) => (err.at_offset(self.text, off), origin),
            (None, origin) => (err, origin),
        }
    }
}

/// A full match points at the value (or the key, for unknown keys); a partial one at
/// the table that lacks the key (its header, or its key for dotted tables).
fn pick(depth: usize, want: usize, key: bool, k: Option<usize>, v: Option<usize>) -> Option<usize> {
    if depth == want && key {
        k.or(v)
    } else {
        v.or(k)
    }
}

fn find_in(t: &dyn TableLike, path: &[&str]) -> (usize, Option<usize>, Option<usize>) {
    let Some((first, rest)) = path.split_first() else {
        return (0, None, None);
    };
    let Some((k, v)) = t.get_key_value(first) else {
        return (0, None, None);
    };
    let (d, kk, vv) = find(v, rest);
    if d == 0 {
        (1, k.span().map(|s| s.start), v.span().map(|s| s.start))
    } else {
        (d + 1, kk, vv)
    }
}

fn lookup_in(t: &dyn TableLike, path: &[&str], key: bool) -> Option<usize> {
    let (d, k, v) = find_in(t, path);
    if d == 0 {
        None
    } else {
        pick(d, path.len(), key, k, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("rate_per_sec", ["rate_per_s", "users"]),
            Some("rate_per_s")
        );
        assert_eq!(suggest("polcy", ["policy", "model"]), Some("policy"));
        assert_eq!(suggest("zzz", ["policy", "model"]), None);
    }

    #[test]
    fn a_policy_table_applies_to_its_policy_or_when_the_policy_varies() {
        let doc: toml::Table = r#"name = "t"
[hardware]
gpu = "l4"
[engine]
model = "m"
policy = "continuous"
static = { batch_size = 4 }
[workload]
arrival = "closed-loop"
users = 2
rate_per_s = 1.0
"#
        .parse()
        .unwrap();
        let errs = check_schema("f", &doc, &[]);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["engine.static", "workload.rate_per_s"], "{errs:?}");
        assert_eq!(
            errs[0].message,
            "does not apply to policy = \"continuous\" (only \"static\"); remove it"
        );
        assert_eq!(
            errs[1].message,
            "does not apply to arrival = \"closed-loop\" (only poisson, gamma, constant); remove it"
        );
        // A sweep over engine.policy carries both policies' tables; the arrival rule
        // holds whatever varies.
        let varied = ["engine.policy".to_string(), "workload.arrival".to_string()];
        let errs = check_schema("f", &doc, &varied);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["workload.rate_per_s"], "{errs:?}");
    }

    #[test]
    fn float_ranges_come_from_the_declaration() {
        let doc: toml::Table = "[hardware]\ntimeslice_ms = 0.05\nsharing = \"time-slice\"\n"
            .parse()
            .unwrap();
        let errs = check_schema("f", &doc, &[]);
        let e = errs
            .iter()
            .find(|e| e.field == "hardware.timeslice_ms")
            .expect("range error");
        assert_eq!(e.message, "got 0.05, allowed: 0.1 to 1000 ms");
    }

    #[test]
    fn spans_point_at_values_keys_and_sweep_entries() {
        let text = "name = \"x\"\n[engine]\nmodel = \"m\"\nbogus = 1\n[sweep]\n\"engine.policy\" = [\"a\", \"b\"]\n";
        let s = Spans::new(text);
        let src = PointSources::default();
        let (e, _) = s.locate(ConfigError::new("f", "engine.model", "x"), "f", &src);
        assert_eq!((e.line, e.column), (Some(3), Some(9)));
        let (e, _) = s.locate(
            ConfigError::new("f", "engine.bogus", "unknown key"),
            "f",
            &src,
        );
        assert_eq!((e.line, e.column), (Some(4), Some(1)));
        // Missing key: the table's header.
        let (e, _) = s.locate(
            ConfigError::new("f", "engine.policy", "is missing"),
            "f",
            &src,
        );
        assert_eq!((e.line, e.column), (Some(2), Some(1)));
        let src = PointSources {
            sweep: vec![("engine.policy".into(), 1)],
            variant: None,
        };
        let (e, o) = s.locate(ConfigError::new("f", "engine.policy", "bad"), "f", &src);
        assert_eq!((e.line, e.column, o), (Some(6), Some(25), Origin::Sweep));
        // Another file: untouched.
        let (e, _) = s.locate(ConfigError::new("g", "engine.model", "x"), "f", &src);
        assert_eq!(e.line, None);
    }
}

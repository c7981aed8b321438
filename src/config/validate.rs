//! Checking experiment files before anything runs: the schema of every key (types,
//! integer ranges, allowed strings, unknown and missing keys) and where in the file a
//! value came from, so that every message reads `file:line:column: field: message`.
//!
//! [`check_schema`] walks one resolved sweep point (a plain TOML table) and reports
//! every key that is unknown, missing, of the wrong type or outside its range, each
//! with its dotted path, the value given and what is allowed. [`Spans`] keeps the
//! file's text parsed with `toml_edit`, which records where each key and value
//! starts, and maps a dotted path back to a line and column: to the `[sweep]` entry
//! or `[[variant]]` table that set the value when one did, else to the key or value
//! in the body of the file, else to the table that lacks a required key.

use crate::error::ConfigError;
use toml_edit::{ImDocument, Item, TableLike};

/// What a key may hold.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string; when the list is not empty, one of these.
    Str(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// An integer in this inclusive range.
    Int(i64, i64),
    /// A finite number (integer or float); ranges are checked with the meaning.
    Float,
    /// A length distribution: `{ dist = "...", ... }`.
    Dist,
    /// A table with these keys.
    Table(&'static [Field]),
    /// An array of tables (`[[name]]`) with these keys.
    Tables(&'static [Field]),
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Key.
    pub name: &'static str,
    /// What it may hold.
    pub kind: Kind,
    /// `Some(hint)` when the key is required: what to give.
    pub required: Option<&'static str>,
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: None,
    }
}

const fn req(name: &'static str, kind: Kind, hint: &'static str) -> Field {
    Field {
        name,
        kind,
        required: Some(hint),
    }
}

const U32: i64 = u32::MAX as i64;
const ANY: Kind = Kind::Str(&[]);

/// The most `[[variant]]`s × sweep values (sweep points) of one experiment.
pub const MAX_POINTS: usize = 10_000;
/// The most replications of one experiment.
pub const MAX_REPLICATIONS: i64 = 1000;
/// The most instances on one GPU (MPS has a lower, per-GPU limit).
pub const MAX_INSTANCES_PER_GPU: i64 = 256;

/// Allowed values of `hardware.sharing`.
pub const SHARING: &[&str] = &["exclusive", "mps", "time-slice"];
/// Allowed values of `hardware.router`: the router registry's names.
pub const ROUTERS: &[&str] = &crate::router::NAMES;
/// Allowed values of `engine.policy`.
pub const POLICIES: &[&str] = &["sequential", "static", "continuous"];
/// Allowed values of `engine.stack`.
pub const STACKS: &[&str] = &["vllm", "transformers"];
/// Allowed values of `workload.arrival`.
pub const ARRIVALS: &[&str] = &[
    "poisson",
    "gamma",
    "constant",
    "trace",
    "closed-loop",
    "offline",
];
/// Allowed values of `workload.think`.
pub const THINKS: &[&str] = &["constant", "exponential", "between"];
/// Allowed values of `workload.sampling`.
pub const SAMPLINGS: &[&str] = &["random", "greedy"];
/// Allowed values of `dist` in a length distribution.
pub const DISTS: &[&str] = &["fixed", "uniform", "normal", "lognormal"];

const HARDWARE: &[Field] = &[
    req(
        "gpu",
        ANY,
        "give a shipped GPU (see `infersim list`) or a path to a GPU spec .toml",
    ),
    opt("num_gpus", Kind::Int(1, 4096)),
    opt("instances_per_gpu", Kind::Int(1, MAX_INSTANCES_PER_GPU)),
    opt("sharing", Kind::Str(SHARING)),
    opt("router", Kind::Str(ROUTERS)),
    opt("timeslice_ms", Kind::Float),
    opt("switch_cost_ms", Kind::Float),
    opt("active_thread_percentage", Kind::Float),
    opt("mig", ANY),
    opt("mig_instances", Kind::Int(1, 7)),
];

const CONTINUOUS: &[Field] = &[
    opt("max_num_seqs", Kind::Int(1, 1_000_000)),
    opt("max_num_batched_tokens", Kind::Int(1, U32)),
    opt("enable_chunked_prefill", Kind::Bool),
    opt("enable_prefix_caching", Kind::Bool),
];

const STATIC: &[Field] = &[
    opt("batch_size", Kind::Int(1, 65536)),
    opt("max_wait_ms", Kind::Float),
    opt("pad_finished", Kind::Bool),
];

/// The `[engine]` settings an `[[instance]]` may override too.
const ENGINE_SETTINGS: &[Field] = &[
    opt("stack", Kind::Str(STACKS)),
    opt("profile", ANY),
    opt("gpu_memory_utilization", Kind::Float),
    opt("block_size", Kind::Int(1, 1024)),
    opt("max_model_len", Kind::Int(2, U32)),
    opt("kv_cache_tokens", Kind::Int(1, 1_000_000_000_000)),
    opt("continuous", Kind::Table(CONTINUOUS)),
    opt("static", Kind::Table(STATIC)),
];

/// `a` followed by `b` (`N` = their total length), at compile time.
const fn concat<const N: usize>(a: &[Field], b: &[Field]) -> [Field; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

const ENGINE: &[Field] = &concat::<{ 2 + ENGINE_SETTINGS.len() }>(
    &[
        req(
            "model",
            ANY,
            "give a shipped model (see `infersim list`) or a path to a model spec .toml",
        ),
        req(
            "policy",
            Kind::Str(POLICIES),
            "give \"sequential\", \"static\" or \"continuous\"",
        ),
    ],
    ENGINE_SETTINGS,
);

/// One `[[instance]]`: the GPU it runs on and settings that override `[engine]`.
const INSTANCE: &[Field] = &concat::<{ 3 + ENGINE_SETTINGS.len() }>(
    &[
        req(
            "gpu",
            Kind::Int(0, 4095),
            "give the index of the GPU it runs on, from 0",
        ),
        opt("model", ANY),
        opt("policy", Kind::Str(POLICIES)),
    ],
    ENGINE_SETTINGS,
);

const WORKLOAD: &[Field] = &[
    req(
        "arrival",
        Kind::Str(ARRIVALS),
        "give \"poisson\", \"gamma\", \"constant\", \"trace\", \"closed-loop\" or \"offline\"",
    ),
    opt("rate_per_s", Kind::Float),
    opt("burstiness", Kind::Float),
    opt("num_requests", Kind::Int(1, i64::MAX)),
    opt("duration_s", Kind::Float),
    opt("warmup_s", Kind::Float),
    opt("users", Kind::Int(1, 10_000_000)),
    opt("spawn_rate_per_s", Kind::Float),
    opt("think", Kind::Str(THINKS)),
    opt("think_time_s", Kind::Float),
    opt("think_min_s", Kind::Float),
    opt("think_max_s", Kind::Float),
    opt("batch_size", Kind::Int(1, 1_000_000)),
    opt("trace", ANY),
    opt("time_scale", Kind::Float),
    opt("input_tokens", Kind::Dist),
    opt("output_tokens", Kind::Dist),
    opt("prompt_pool", Kind::Int(1, 10_000_000)),
    opt("sampling", Kind::Str(SAMPLINGS)),
];

/// The keys of an experiment file (after `[sweep]` and `[[variant]]` are taken out).
pub const TOP: &[Field] = &[
    req(
        "name",
        ANY,
        "give a name for the output folder, for example name = \"my-test\"",
    ),
    opt("description", ANY),
    opt("seed", Kind::Int(0, i64::MAX)),
    opt("replications", Kind::Int(1, MAX_REPLICATIONS)),
    req(
        "hardware",
        Kind::Table(HARDWARE),
        "add a [hardware] table with at least gpu = \"...\"",
    ),
    req(
        "engine",
        Kind::Table(ENGINE),
        "add an [engine] table with at least model and policy",
    ),
    opt("instance", Kind::Tables(INSTANCE)),
    req(
        "workload",
        Kind::Table(WORKLOAD),
        "add a [workload] table: arrival, input_tokens, output_tokens, and num_requests or duration_s",
    ),
];

const DIST_FIXED: &[Field] = &[req("value", Kind::Int(1, i64::MAX), "give value = N")];
const DIST_UNIFORM: &[Field] = &[
    req("mean", Kind::Int(1, i64::MAX), "give mean = N (tokens)"),
    req(
        "range_ratio",
        Kind::Float,
        "give range_ratio in [0, 1), for example 0.5",
    ),
];
const DIST_NORMAL: &[Field] = &[
    req("mean", Kind::Float, "give mean (tokens)"),
    req("std", Kind::Float, "give std (tokens)"),
];

/// A number as a person writes it: `0.5`, `2048`, `1e-6`, `1e300`, `nan`.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e6).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

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

fn quoted_list(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn int_range(lo: i64, hi: i64) -> String {
    if hi == i64::MAX {
        format!("an integer >= {lo}")
    } else {
        format!("an integer from {lo} to {hi}")
    }
}

/// What `kind` allows, in words.
pub fn allowed(kind: Kind) -> String {
    match kind {
        Kind::Str([]) => "a string".into(),
        Kind::Str(list) => quoted_list(list),
        Kind::Bool => "true or false".into(),
        Kind::Int(lo, hi) => int_range(lo, hi),
        Kind::Float => "a finite number".into(),
        Kind::Dist => "a table such as { dist = \"fixed\", value = 128 }".into(),
        Kind::Table(_) => "a table".into(),
        Kind::Tables(_) => "an array of tables ([[...]])".into(),
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

/// Checks `v` at `path` against `kind`; appends errors (with `file`).
fn check_value(file: &str, path: &str, v: &toml::Value, kind: Kind, out: &mut Vec<ConfigError>) {
    let wrong = |out: &mut Vec<ConfigError>| {
        out.push(ConfigError::new(
            file,
            path,
            format!(
                "got {} ({}), allowed: {}",
                show(v),
                type_name(v),
                allowed(kind)
            ),
        ))
    };
    match (kind, v) {
        (Kind::Str(list), toml::Value::String(s)) => {
            if !list.is_empty() && !list.contains(&s.as_str()) {
                let hint = suggest(s, list.iter().copied())
                    .map(|n| format!(" (did you mean {n:?}?)"))
                    .unwrap_or_default();
                out.push(ConfigError::new(
                    file,
                    path,
                    format!("got {s:?}, allowed: {}{hint}", quoted_list(list)),
                ));
            }
        }
        (Kind::Bool, toml::Value::Boolean(_)) => {}
        (Kind::Int(lo, hi), toml::Value::Integer(i)) => {
            if *i < lo || *i > hi {
                out.push(ConfigError::new(
                    file,
                    path,
                    format!("got {i}, allowed: {}", int_range(lo, hi)),
                ));
            }
        }
        (Kind::Float, toml::Value::Integer(_)) => {}
        (Kind::Float, toml::Value::Float(f)) => {
            if !f.is_finite() {
                out.push(ConfigError::new(
                    file,
                    path,
                    format!("got {}, allowed: a finite number", show(v)),
                ));
            }
        }
        (Kind::Table(fields), toml::Value::Table(t)) => {
            let what = format!("[{path}]");
            check_table(file, path, t, fields, &what, out)
        }
        (Kind::Dist, toml::Value::Table(t)) => check_dist(file, path, t, out),
        (Kind::Tables(fields), toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match item {
                    toml::Value::Table(t) => {
                        check_table(file, &p, t, fields, &format!("[[{path}]]"), out)
                    }
                    other => check_value(file, &p, other, Kind::Table(fields), out),
                }
            }
        }
        _ => wrong(out),
    }
}

fn check_dist(file: &str, path: &str, t: &toml::Table, out: &mut Vec<ConfigError>) {
    let dist_path = join(path, "dist");
    let fields = match t.get("dist") {
        None => {
            out.push(ConfigError::new(
                file,
                dist_path,
                format!(
                    "is required: one of {}, for example {{ dist = \"fixed\", value = 128 }}",
                    quoted_list(DISTS)
                ),
            ));
            return;
        }
        Some(toml::Value::String(s)) => match s.as_str() {
            "fixed" => DIST_FIXED,
            "uniform" => DIST_UNIFORM,
            "normal" | "lognormal" => DIST_NORMAL,
            _ => {
                check_value(file, &dist_path, &t["dist"], Kind::Str(DISTS), out);
                return;
            }
        },
        Some(other) => {
            check_value(file, &dist_path, other, Kind::Str(DISTS), out);
            return;
        }
    };
    let mut rest = t.clone();
    rest.remove("dist");
    let what = format!("{path} with dist = {}", t["dist"]);
    check_table(file, path, &rest, fields, &what, out);
}

/// Checks the keys of table `t` at `path` (`what` names it in messages).
fn check_table(
    file: &str,
    path: &str,
    t: &toml::Table,
    fields: &[Field],
    what: &str,
    out: &mut Vec<ConfigError>,
) {
    for (k, v) in t {
        match fields.iter().find(|f| f.name == k) {
            Some(f) => check_value(file, &join(path, k), v, f.kind, out),
            None => {
                let hint = suggest(k, fields.iter().map(|f| f.name))
                    .map(|n| format!("did you mean {n:?}? "))
                    .unwrap_or_default();
                out.push(ConfigError::new(
                    file,
                    join(path, k),
                    format!(
                        "unknown key; {hint}allowed in {what}: {}",
                        fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    for f in fields {
        if let (Some(hint), None) = (f.required, t.get(f.name)) {
            out.push(ConfigError::new(
                file,
                join(path, f.name),
                format!("is missing; {hint}"),
            ));
        }
    }
}

/// Checks a resolved experiment table against the schema: every unknown or missing
/// key, wrong type, integer out of range and non-finite number, with its path.
pub fn check_schema(file: &str, doc: &toml::Table) -> Vec<ConfigError> {
    let mut out = Vec::new();
    check_table(file, "", doc, TOP, "the top level", &mut out);
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

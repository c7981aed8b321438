//! Expanding an experiment file into sweep points: taking out `[sweep]` and
//! `[[variant]]`, setting and removing dotted paths, merging variant tables, and
//! locating TOML syntax errors.

use crate::error::ConfigError;
use crate::validate::{show, type_name};

/// Sweep keys that cannot be swept, and why.
const UNSWEEPABLE: &[(&str, &str)] = &[
    ("name", "one experiment writes one output folder"),
    ("seed", "use replications, or run again with --seed"),
    ("replications", "set it once for the whole experiment"),
    (VARIANT, "write [[variant]] tables instead"),
];

/// Takes `[sweep]` out of the document: its axes, in file order.
pub(crate) fn take_sweep(
    doc: &mut toml::Table,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Vec<toml::Value>)> {
    let mut axes = Vec::new();
    match doc.remove("sweep") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                let field = format!("sweep.{k}");
                if let Some((_, why)) = UNSWEEPABLE.iter().find(|(n, _)| *n == k) {
                    errors.push(ConfigError::new(
                        file,
                        field,
                        format!("{k:?} cannot be swept: {why}"),
                    ));
                    continue;
                }
                match v {
                    toml::Value::Array(a) if !a.is_empty() => {
                        // The same value twice would run the same point twice.
                        let dup = (1..a.len()).find_map(|j| {
                            a[..j].iter().position(|x| x == &a[j]).map(|i| (i, j))
                        });
                        match dup {
                            Some((i, j)) => errors.push(ConfigError::new(
                                file,
                                field,
                                format!(
                                    "{} is given twice (values {} and {} of the list); allowed: distinct values",
                                    show(&a[j]),
                                    i + 1,
                                    j + 1
                                ),
                            )),
                            None => axes.push((k, a)),
                        }
                    }
                    toml::Value::Array(_) => errors.push(ConfigError::new(
                        file,
                        field,
                        "is an empty list; give at least one value",
                    )),
                    toml::Value::Table(_) => errors.push(ConfigError::new(
                        file,
                        field,
                        format!(
                            "got a table, allowed: a list of values; write dotted paths in quotes, for example \"{k}.key\" = [1, 2]"
                        ),
                    )),
                    other => errors.push(ConfigError::new(
                        file,
                        field,
                        format!(
                            "got {} ({}), allowed: a list of values, for example [{}]",
                            show(&other),
                            type_name(&other),
                            show(&other)
                        ),
                    )),
                }
            }
        }
        Some(other) => errors.push(ConfigError::new(
            file,
            "sweep",
            format!(
                "got {} ({}), allowed: a table of \"dotted.path\" = [values]",
                show(&other),
                type_name(&other)
            ),
        )),
    }
    axes
}

/// The name of the sweep axis made by `[[variant]]` tables.
pub const VARIANT: &str = "variant";

/// Removes the `[[variant]]` tables: each has a `name` and settings that override the
/// rest of the file (tables merge key by key). Variants form the first sweep axis,
/// for set-ups that differ in several settings at once.
pub(crate) fn take_variants(
    doc: &mut toml::Table,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, toml::Table)> {
    let Some(v) = doc.remove(VARIANT) else {
        return Vec::new();
    };
    let toml::Value::Array(items) = v else {
        errors.push(ConfigError::new(
            file,
            VARIANT,
            format!(
                "got {}, allowed: an array of tables ([[variant]]), each with a name",
                type_name(&v)
            ),
        ));
        return Vec::new();
    };
    if items.is_empty() {
        errors.push(ConfigError::new(
            file,
            VARIANT,
            "is empty; give at least one [[variant]]",
        ));
    }
    let mut out: Vec<(String, toml::Table)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let toml::Value::Table(mut t) = item else {
            errors.push(ConfigError::new(
                file,
                format!("variant[{i}]"),
                format!("got {}, allowed: a table", type_name(&item)),
            ));
            continue;
        };
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            other => {
                let got = other
                    .map(|v| format!("got {}; ", show(&v)))
                    .unwrap_or_default();
                errors.push(ConfigError::new(
                    file,
                    format!("variant[{i}].name"),
                    format!("{got}a non-empty string naming the set-up is required"),
                ));
                continue;
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            errors.push(ConfigError::new(
                file,
                format!("variant[{i}].name"),
                format!("{name:?} is used twice; names must be unique"),
            ));
            continue;
        }
        out.push((name, t));
    }
    out
}

/// A TOML syntax error, located.
pub(crate) fn toml_error(e: &toml::de::Error, text: &str, file: &str) -> ConfigError {
    let lines: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let msg = if lines.is_empty() {
        "invalid TOML: a value is expected here".to_string()
    } else {
        format!("invalid TOML: {}", lines.join("; "))
    };
    let err = ConfigError::new(file, "(toml)", msg);
    match e.span() {
        Some(span) => err.at_offset(text, span.start),
        None => err,
    }
}

/// Sets `a.b.c` in a TOML table to `v`; the parent tables must exist or are created.
pub(crate) fn set_path(
    doc: &mut toml::Table,
    path: &str,
    v: toml::Value,
    file: &str,
) -> Result<(), ConfigError> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ConfigError::new(
            file,
            format!("sweep.{path}"),
            "is not a dotted path like \"workload.rate_per_s\"",
        ));
    }
    let mut t = doc;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(tt) => tt,
            other => {
                return Err(ConfigError::new(
                    file,
                    format!("sweep.{path}"),
                    format!(
                        "{} is {}, not a table, so it cannot hold {path:?}",
                        parts[..=i].join("."),
                        type_name(other)
                    ),
                ))
            }
        };
    }
    t.insert(parts[parts.len() - 1].to_string(), v);
    Ok(())
}

/// Merges `src` into `dst`: tables key by key, anything else replaced.
pub(crate) fn deep_merge(dst: &mut toml::Table, src: &toml::Table) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(toml::Value::Table(d)), toml::Value::Table(s)) => deep_merge(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Removes the key at dotted `path` under `v`, if there.
pub(crate) fn remove_path(v: &mut toml::Value, path: &str) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let toml::Value::Table(t) = cur {
        t.remove(parts[parts.len() - 1]);
    }
}

//! GPU prices as data: one dated table per provider (`models/prices/<provider>.toml`,
//! shipped in the binary) or a user's own file, each row a GPU, a price kind
//! (on-demand, spot, reserved, capacity block: never mixed under one name), the
//! dollars per GPU-hour, the instance it was read from, and its source page and
//! date. The default provider, `spec`, is the price each GPU spec file carries
//! (`price_per_gpu_hour_usd` and `price_source` in `models/gpu/*.toml`), so an
//! experiment that names no provider costs what it did before.
//!
//! ```toml
//! provider = "mycloud"
//! description = "what the table is"
//! [[price]]
//! gpu = "h100-sxm"            # a GPU name, as `hardware.gpu` names it
//! kind = "on-demand"          # on-demand | spot | reserved | capacity-block
//! usd_per_gpu_hour = 2.99     # instance price / GPUs in the instance
//! instance = "8x H100 SXM"
//! gpus_per_instance = 8
//! region = "us-east-1"
//! date = "2026-05"            # when the source quoted it
//! source = "page it was read from"
//! verified = false            # true only when read on the provider's own price page
//! ```

use crate::error::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The default provider: the price in each GPU's spec file.
pub const SPEC_PROVIDER: &str = "spec";
/// Price kinds (`hardware.price_kind`): one name each, never mixed.
pub const PRICE_KINDS: &[&str] = &["on-demand", "spot", "reserved", "capacity-block"];

macro_rules! shipped_prices {
    ($($name:literal),*) => {
        &[$(($name, include_str!(concat!("../../models/prices/", $name, ".toml")))),*]
    };
}

/// The shipped price tables: (provider, file text).
pub const SHIPPED_PRICES: &[(&str, &str)] =
    shipped_prices!("aws", "gcp", "azure", "lambda", "coreweave", "runpod");

/// The providers `hardware.price_provider` may name (without a price file).
pub fn provider_names() -> Vec<&'static str> {
    std::iter::once(SPEC_PROVIDER)
        .chain(SHIPPED_PRICES.iter().map(|p| p.0))
        .collect()
}

/// One price table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Provider name.
    pub provider: String,
    /// What the table is.
    #[serde(default)]
    pub description: String,
    /// Its rows.
    #[serde(default)]
    pub price: Vec<PriceRow>,
}

/// One GPU's price of one kind at one provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRow {
    /// GPU name (as `hardware.gpu` names it).
    pub gpu: String,
    /// One of [`PRICE_KINDS`].
    pub kind: String,
    /// Dollars per GPU-hour.
    pub usd_per_gpu_hour: f64,
    /// Instance or offer the price is of.
    #[serde(default)]
    pub instance: String,
    /// GPUs in that instance.
    #[serde(default)]
    pub gpus_per_instance: Option<u32>,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// When the source quoted it.
    pub date: String,
    /// Where it was read.
    pub source: String,
    /// Read on the provider's own price page (false: a third-party quote or from
    /// memory; the source says which).
    #[serde(default)]
    pub verified: bool,
}

impl PriceTable {
    /// Parses and checks a table; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<PriceTable, Vec<ConfigError>> {
        let t: PriceTable = toml::from_str(text).map_err(|e| {
            vec![ConfigError::new(
                file,
                "(file)",
                e.message().lines().next().unwrap_or("").to_string(),
            )]
        })?;
        let mut errs = Vec::new();
        for (i, r) in t.price.iter().enumerate() {
            if !PRICE_KINDS.contains(&r.kind.as_str()) {
                errs.push(ConfigError::new(
                    file,
                    format!("price[{i}].kind"),
                    format!(
                        "got {:?}, allowed: {}",
                        r.kind,
                        super::schema::quoted_list(PRICE_KINDS)
                    ),
                ));
            }
            if !(r.usd_per_gpu_hour.is_finite() && r.usd_per_gpu_hour > 0.0) {
                errs.push(ConfigError::new(
                    file,
                    format!("price[{i}].usd_per_gpu_hour"),
                    format!(
                        "got {}, allowed: a price above 0 (leave out a GPU with no known price)",
                        r.usd_per_gpu_hour
                    ),
                ));
            }
            if t.price[..i]
                .iter()
                .any(|o| o.gpu == r.gpu && o.kind == r.kind)
            {
                errs.push(ConfigError::new(
                    file,
                    format!("price[{i}]"),
                    format!(
                        "a second {} price for {}: one row per GPU and kind",
                        r.kind, r.gpu
                    ),
                ));
            }
        }
        if errs.is_empty() {
            Ok(t)
        } else {
            Err(errs)
        }
    }

    /// The row of `gpu` and `kind`, if the table has one.
    pub fn find(&self, gpu: &str, kind: &str) -> Option<&PriceRow> {
        self.price.iter().find(|r| r.gpu == gpu && r.kind == kind)
    }

    /// Reads a user's price file.
    pub fn load(path: &Path, file: &str, field: &str) -> Result<PriceTable, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError::new(
                file,
                field,
                format!("cannot read price file {}: {e}", path.display()),
            )]
        })?;
        PriceTable::parse(&text, &path.display().to_string())
    }
}

/// The shipped table of `provider`.
pub fn shipped(provider: &str) -> Option<PriceTable> {
    let (name, text) = SHIPPED_PRICES.iter().find(|p| p.0 == provider)?;
    let file = format!("models/prices/{name}.toml");
    Some(PriceTable::parse(text, &file).expect("shipped price tables parse (a test checks)"))
}

/// The price a run is costed at.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// Provider (`spec`: the GPU spec file's figure).
    pub provider: String,
    /// Price kind (empty for `spec`, whose files say it in their source).
    pub kind: String,
    /// Dollars per physical GPU-hour; NaN when unknown.
    pub usd_per_gpu_hour: f64,
    /// Where it came from.
    pub source: String,
}

impl Default for Price {
    fn default() -> Self {
        Price {
            provider: SPEC_PROVIDER.into(),
            kind: String::new(),
            usd_per_gpu_hour: f64::NAN,
            source: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_parse_name_themselves_and_price_known_gpus() {
        let gpus: Vec<&str> = crate::specs::SHIPPED_GPUS.iter().map(|g| g.0).collect();
        for (name, text) in SHIPPED_PRICES {
            let t = PriceTable::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(&t.provider, name);
            assert!(!t.price.is_empty(), "{name}");
            for r in &t.price {
                assert!(gpus.contains(&r.gpu.as_str()), "{name}: {}", r.gpu);
                assert!(
                    !r.source.is_empty() && !r.date.is_empty(),
                    "{name}: {}",
                    r.gpu
                );
                // Plausibility band: no GPU rents for under 5 cents or over $100 an hour.
                assert!(
                    (0.05..100.0).contains(&r.usd_per_gpu_hour),
                    "{name}: {}",
                    r.gpu
                );
            }
        }
    }

    #[test]
    fn bad_rows_are_named() {
        let text = "provider = \"x\"\n[[price]]\ngpu = \"l4\"\nkind = \"monthly\"\nusd_per_gpu_hour = 0.0\ndate = \"2026\"\nsource = \"s\"\n[[price]]\ngpu = \"l4\"\nkind = \"monthly\"\nusd_per_gpu_hour = 1.0\ndate = \"2026\"\nsource = \"s\"\n";
        let errs = PriceTable::parse(text, "p.toml").unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "price[0].kind",
                "price[0].usd_per_gpu_hour",
                "price[1].kind",
                "price[1]"
            ]
        );
    }
}

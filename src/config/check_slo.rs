//! Checking `[slo]` and the price keys of `[hardware]`, and applying them: the SLO
//! bounds go to the client that judges each request ([`crate::metrics::slo`]); the
//! price of the point's GPU is read from the chosen provider's table
//! ([`super::prices`]) for the cost figures every summary carries.

use super::check::Checker;
use super::prices::{self, Price, PriceTable, SPEC_PROVIDER};
use super::raw::{RawExperiment, RawHardware};
use super::schema::quoted_list;
use crate::metrics::Slo;
use crate::sim::Scenario;
use crate::specs::GpuSpec;

impl Checker<'_> {
    /// `[slo]`: the bounds, onto the scenario's client.
    pub(super) fn slo(&mut self, raw: &RawExperiment, sc: &mut Scenario) {
        let Some(r) = &raw.slo else {
            return;
        };
        // The table's keys, read back by name (the schema has checked each).
        let table = toml::Value::try_from(r).unwrap_or(toml::Value::Table(Default::default()));
        let mut slo = Slo::default();
        if let Some(t) = table.as_table() {
            for (k, v) in t {
                if let Some(b) = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                    slo.set(k, b);
                }
            }
        }
        if slo.is_empty() {
            self.err(
                "slo",
                format!(
                    "is empty: give at least one bound, allowed keys: {}",
                    Slo::keys().join(", ")
                ),
            );
            return;
        }
        sc.client.slo = Some(slo);
    }

    /// `hardware.price_provider`, `price_file` and `price_kind`: the price of one
    /// physical `gpu` (the whole GPU, for a MIG slice).
    pub(super) fn price(&mut self, h: &RawHardware, gpu: &GpuSpec) -> Price {
        // A MIG slice's spec carries its share of the price; a run pays for the
        // whole GPU, whose spec loaded once already.
        let whole = match &gpu.mig {
            Some(_) => crate::specs::load_gpu(&h.gpu, self.base, self.file, "hardware.gpu")
                .unwrap_or_else(|_| gpu.clone()),
            None => gpu.clone(),
        };
        let kind = h.price_kind.as_deref().unwrap_or("on-demand");
        let table = match (&h.price_file, h.price_provider.as_deref()) {
            (Some(f), provider) => {
                let path = match self.base {
                    Some(b) => b.join(f),
                    None => f.into(),
                };
                match PriceTable::load(&path, self.file, "hardware.price_file") {
                    Ok(t) => {
                        if let Some(p) = provider.filter(|p| *p != t.provider) {
                            self.err(
                                "hardware.price_provider",
                                format!(
                                    "got {p:?}, but price_file {f} is the table of {:?}; remove price_provider or make them agree",
                                    t.provider
                                ),
                            );
                            return Price::default();
                        }
                        t
                    }
                    Err(errs) => {
                        self.errs.extend(errs);
                        return Price::default();
                    }
                }
            }
            (None, None) | (None, Some(SPEC_PROVIDER)) => {
                if h.price_kind.is_some() {
                    self.err(
                        "hardware.price_kind",
                        "applies only with hardware.price_provider or price_file (the \"spec\" price is the one figure of the GPU file); remove it or name a provider",
                    );
                }
                return spec_price(&whole);
            }
            (None, Some(p)) => match prices::shipped(p) {
                Some(t) => t,
                None => {
                    self.err(
                        "hardware.price_provider",
                        format!(
                            "got {p:?}, allowed: {} (or give hardware.price_file)",
                            quoted_list(&prices::provider_names())
                        ),
                    );
                    return Price::default();
                }
            },
        };
        match table.find(&gpu.name, kind) {
            Some(r) => Price {
                provider: table.provider.clone(),
                kind: kind.to_string(),
                usd_per_gpu_hour: r.usd_per_gpu_hour,
                source: r.source.clone(),
            },
            None => {
                let offer: Vec<String> = prices::SHIPPED_PRICES
                    .iter()
                    .filter_map(|(n, _)| prices::shipped(n))
                    .filter(|t| t.find(&gpu.name, kind).is_some())
                    .map(|t| t.provider)
                    .collect();
                let kinds: Vec<&str> = table
                    .price
                    .iter()
                    .filter(|r| r.gpu == gpu.name)
                    .map(|r| r.kind.as_str())
                    .collect();
                let field = if h.price_file.is_some() {
                    "hardware.price_file"
                } else {
                    "hardware.price_provider"
                };
                let also = if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {} prices)", quoted_list(&kinds))
                };
                let who = if offer.is_empty() {
                    format!("no shipped table has one; use price_provider = \"{SPEC_PROVIDER}\" or a price_file")
                } else {
                    format!(
                        "providers with one: {}",
                        quoted_list(&offer.iter().map(String::as_str).collect::<Vec<_>>())
                    )
                };
                self.err(
                    field,
                    format!(
                        "{} has no {kind} price for {}{also}; {who}",
                        table.provider, gpu.name
                    ),
                );
                Price::default()
            }
        }
    }
}

/// The GPU spec file's own price (0 in the file means unknown).
fn spec_price(gpu: &GpuSpec) -> Price {
    let p = gpu.price_per_gpu_hour_usd;
    Price {
        provider: SPEC_PROVIDER.into(),
        kind: String::new(),
        usd_per_gpu_hour: if p > 0.0 { p } else { f64::NAN },
        source: gpu.price_source.clone(),
    }
}

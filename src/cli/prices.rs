//! `infersim list`'s price section: every shipped price table (models/prices/), one
//! line per GPU and price kind with its source's date, marked where the figure was not
//! read on the provider's own page.

use crate::config::prices::{shipped, SHIPPED_PRICES, SPEC_PROVIDER};

/// Prints the shipped price tables.
pub(super) fn print_prices() {
    println!(
        "Prices (models/prices; hardware.price_provider, default \"{SPEC_PROVIDER}\" = the GPU file's price above; * = not verified on the provider's page):"
    );
    for (name, _) in SHIPPED_PRICES {
        let Some(t) = shipped(name) else { continue };
        println!("  {:<10} {}", t.provider, t.description);
        for r in &t.price {
            println!(
                "  {:<10} {:<12} {:<14} ${:>6.3}/GPU-h{} {:<40} {}",
                "",
                r.gpu,
                r.kind,
                r.usd_per_gpu_hour,
                if r.verified { " " } else { "*" },
                r.instance,
                r.date
            );
        }
    }
}

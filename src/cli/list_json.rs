//! `infersim list --json`: the same inventory as `infersim list` (shipped models, GPUs
//! with where their step costs come from, stack profiles, engine presets, price
//! tables) as one JSON object, for scripts and front ends.

use crate::config::prices::{shipped, SHIPPED_PRICES};
use crate::error::Error;
use crate::profile::{list_profiles, profiles_dir, read_profile};
use crate::specs::{load_gpu, load_model, SHIPPED_GPUS, SHIPPED_MODELS};
use serde_json::{json, Value};

/// Where a GPU's step costs come from, in one word plus detail.
fn gpu_part(name: &str, architecture: &str) -> Value {
    match crate::kernels::tables_for(name) {
        Ok(Some(_)) => json!({"source": "tables", "detail": format!("calibration/kernels/{name}")}),
        Ok(None) => match crate::kernels::curves_file() {
            Ok(c) if c.arch.contains_key(architecture) => {
                json!({"source": "curves", "detail": format!("{architecture} anchor")})
            }
            Ok(_) => json!({"source": "curves", "detail": "cross-architecture default anchor"}),
            Err(e) => json!({"source": "unavailable", "detail": e.to_string()}),
        },
        Err(e) => json!({"source": "unreadable", "detail": e.to_string()}),
    }
}

/// The inventory as JSON.
pub(super) fn list_json() -> Result<Value, Error> {
    let mut models = Vec::new();
    for (name, _) in SHIPPED_MODELS {
        let m = load_model(name, None, "models", "model")?;
        models.push(json!({
            "name": m.name,
            "params": m.param_count(),
            "active_params": m.active_param_count(),
            "quantization": m.quantization,
            // In the checkpoint's own format, as `list` prints it.
            "weight_bytes": crate::cost::quant::checkpoint_weight_bytes(&m) as u64,
            "kv_bytes_per_token": m.kv_bytes_per_token(),
            "max_context": m.max_context,
        }));
    }
    let mut gpus = Vec::new();
    for (name, _) in SHIPPED_GPUS {
        let g = load_gpu(name, None, "models", "gpu")?;
        let mig: Vec<Value> = g
            .mig_profiles
            .iter()
            .map(|p| json!({"name": p.name, "max_instances": p.max_instances}))
            .collect();
        gpus.push(json!({
            "name": g.name,
            "full_name": g.full_name,
            "architecture": g.architecture,
            "tensor_tflops": g.tensor_tflops,
            "memory_bandwidth_gbps": g.memory_bandwidth_gbps,
            "memory_gib": g.memory_gib,
            "price_per_gpu_hour_usd": g.price_per_gpu_hour_usd,
            "gpu_part": gpu_part(&g.name, &g.architecture),
            "mig_profiles": mig,
        }));
    }
    let dir = profiles_dir();
    let profiles: Vec<Value> = list_profiles()
        .into_iter()
        .map(|p| match read_profile(&dir.join(format!("{p}.toml"))) {
            Ok(prof) => json!({"name": p, "status": prof.status, "source": prof.source}),
            Err(e) => json!({"name": p, "status": "unreadable", "source": e.to_string()}),
        })
        .collect();
    let stacks: Vec<Value> = crate::stacks::PRESETS
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "engine": s.engine,
                "version": s.version,
                "profile": s.profile,
                "borrows": s.borrows,
            })
        })
        .collect();
    let prices: Vec<Value> = SHIPPED_PRICES
        .iter()
        .filter_map(|(name, _)| shipped(name))
        .map(|t| {
            let rows: Vec<Value> = t
                .price
                .iter()
                .map(|r| {
                    json!({
                        "gpu": r.gpu,
                        "kind": r.kind,
                        "usd_per_gpu_hour": r.usd_per_gpu_hour,
                        "instance": r.instance,
                        "date": r.date,
                        "verified": r.verified,
                    })
                })
                .collect();
            json!({"provider": t.provider, "description": t.description, "prices": rows})
        })
        .collect();
    Ok(json!({
        "profiles_dir": dir.display().to_string(),
        "data_embedded": crate::specs::embedded::is_embedded(&dir),
        "models": models,
        "gpus": gpus,
        "profiles": profiles,
        "stacks": stacks,
        "price_tables": prices,
    }))
}

/// Prints the inventory as pretty JSON.
pub(super) fn cmd_list_json() -> Result<(), Error> {
    let v = list_json()?;
    println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    Ok(())
}

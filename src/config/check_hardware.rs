//! Checking `[hardware]`: the GPU spec (and MIG profile) must load and the sharing
//! mode must allow the instances asked for on one GPU.

use super::check::{Checker, Hw};
use super::raw::{RawHardware, DEFAULT_SWITCH_COST_MS, DEFAULT_TIMESLICE_MS};
use super::schema::{quoted_list, SHARING};
use crate::gpu::Sharing;
use crate::router::RouterKind;
use crate::specs::{load_gpu_all, GpuSpec};
use crate::time::Dur;

impl Checker<'_> {
    /// `[hardware]`: the GPU (when it loads) and the section (when all of it holds).
    pub(super) fn hardware(&mut self, h: &RawHardware) -> (Option<GpuSpec>, Option<Hw>) {
        let n0 = self.errs.len();
        let gpu = match load_gpu_all(&h.gpu, self.base, self.file, "hardware.gpu") {
            Ok(g) => Some(g),
            Err(errs) => {
                for e in errs {
                    let e = self.spec_error(e, "hardware.gpu", "GPU");
                    self.errs.push(e);
                }
                None
            }
        };
        let (gpu, mig) = self.mig(h, gpu);
        let per_gpu = h.instances_per_gpu;
        let sharing_name = h.sharing.as_deref().unwrap_or("exclusive");
        let sharing = match sharing_name {
            "exclusive" => {
                if per_gpu != 1 {
                    self.err("hardware.instances_per_gpu", format!("got {per_gpu}, but sharing = \"exclusive\" allows one instance per GPU; use sharing = \"mps\" or \"time-slice\""));
                }
                Some(Sharing::Exclusive)
            }
            "mps" => {
                if let Some(g) = &gpu {
                    if per_gpu > g.mps_max_clients {
                        self.err(
                            "hardware.instances_per_gpu",
                            format!(
                                "got {per_gpu}, but MPS allows at most {} clients per {} GPU",
                                g.mps_max_clients,
                                g.label()
                            ),
                        );
                    }
                }
                Some(Sharing::Mps)
            }
            "time-slice" => Some(Sharing::TimeSlice {
                quantum: Dur::from_millis_f64(h.timeslice_ms.unwrap_or(DEFAULT_TIMESLICE_MS)),
                switch_cost: Dur::from_millis_f64(
                    h.switch_cost_ms.unwrap_or(DEFAULT_SWITCH_COST_MS),
                ),
            }),
            other => {
                self.err(
                    "hardware.sharing",
                    format!("got {other:?}, allowed: {}", quoted_list(SHARING)),
                );
                None
            }
        };
        let atp = h.active_thread_percentage.unwrap_or(100.0);
        let (Some(g), Some(sharing), true) = (gpu.clone(), sharing, self.errs.len() == n0) else {
            return (gpu, None);
        };
        let num_gpus = h.num_gpus * mig.as_ref().map_or(1, |m| m.1);
        (
            gpu,
            Some(Hw {
                gpu: g,
                sharing,
                atp,
                router: h.router.unwrap_or(RouterKind::RoundRobin),
                num_gpus,
                per_gpu,
                mig: mig.map(|m| (m.0, h.num_gpus)),
            }),
        )
    }

    /// `hardware.mig` and `mig_instances`: the GPU to simulate (one MIG instance of
    /// the GPU, with MIG) and, with MIG, (profile, MIG instances per GPU).
    fn mig(
        &mut self,
        h: &RawHardware,
        gpu: Option<GpuSpec>,
    ) -> (Option<GpuSpec>, Option<(String, u32)>) {
        let Some(name) = &h.mig else {
            if h.mig_instances.is_some() {
                self.err(
                    "hardware.mig_instances",
                    "applies only with hardware.mig (a MIG profile such as \"3g.40gb\"); set it or remove mig_instances",
                );
            }
            return (gpu, None);
        };
        let Some(g) = gpu else {
            return (None, None);
        };
        if g.mig_profiles.is_empty() {
            self.err(
                "hardware.mig",
                format!("{} has no MIG; MIG needs an A100, H100 or H200 (see `infersim list`); remove mig or choose another gpu", g.name),
            );
            return (Some(g), None);
        }
        let Some(p) = g.mig_profiles.iter().find(|p| &p.name == name) else {
            let names: Vec<&str> = g.mig_profiles.iter().map(|p| p.name.as_str()).collect();
            self.err(
                "hardware.mig",
                format!(
                    "got {name:?}, allowed on {}: {}",
                    g.name,
                    quoted_list(&names)
                ),
            );
            return (Some(g), None);
        };
        let n = h.mig_instances.unwrap_or(p.max_instances);
        if !(1..=p.max_instances).contains(&n) {
            self.err(
                "hardware.mig_instances",
                format!(
                    "got {n}, allowed: 1 to {} instances of {} per {} GPU",
                    p.max_instances, p.name, g.name
                ),
            );
            return (Some(g), None);
        }
        (Some(g.mig_slice(p)), Some((p.name.clone(), n)))
    }
}

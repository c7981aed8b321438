//! Routers on hand-worked loads, and the registry.

use super::*;
use crate::time::SimTime;
use rand::SeedableRng;

fn req(session: Option<u32>) -> Request {
    Request {
        user: session,
        session,
        ..Request::new(0, SimTime::ZERO, 10, 10)
    }
}

fn load(outstanding: u64, outstanding_tokens: u64, cached_prefix_blocks: u64) -> InstanceLoad {
    InstanceLoad {
        outstanding,
        outstanding_tokens,
        cached_prefix_blocks,
        ..InstanceLoad::default()
    }
}

fn router(name: &str) -> Box<dyn Router> {
    RouterKind::from_name(name)
        .unwrap_or_else(|| panic!("{name} is registered"))
        .build(ChaCha8Rng::seed_from_u64(1))
}

/// Instance 0 has fewer requests but far more tokens: `least-tokens` must pick 1,
/// `least-requests` 0. (A `least-tokens` reading request counts fails here.)
#[test]
fn least_tokens_routes_by_tokens_not_by_request_count() {
    let loads = [load(1, 4000, 0), load(3, 90, 0), load(2, 500, 0)];
    assert_eq!(router("least-tokens").pick(&req(None), &loads), 1);
    assert_eq!(router("least-requests").pick(&req(None), &loads), 0);
    // Ties go to the lowest index.
    let tied = [load(5, 300, 0), load(1, 100, 0), load(0, 100, 0)];
    assert_eq!(router("least-tokens").pick(&req(None), &tied), 1);
    assert_eq!(router("least-requests").pick(&req(None), &tied), 2);
}

#[test]
fn round_robin_takes_instances_in_turn() {
    let mut r = router("round-robin");
    let loads = [load(9, 9, 0), load(0, 0, 0), load(0, 0, 0)];
    let picks: Vec<usize> = (0..7).map(|_| r.pick(&req(None), &loads)).collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
}

/// With two instances power-of-two always compares both, so it never picks the one
/// with more outstanding requests.
#[test]
fn power_of_two_of_two_instances_picks_the_less_loaded() {
    let mut r = router("power-of-two");
    for _ in 0..50 {
        assert_eq!(r.pick(&req(None), &[load(5, 0, 0), load(1, 0, 0)]), 1);
        assert_eq!(r.pick(&req(None), &[load(1, 0, 0), load(5, 0, 0)]), 0);
    }
}

#[test]
fn sticky_pins_users_and_sends_others_round_robin() {
    let mut r = router("sticky");
    let loads = [load(0, 0, 0); 4];
    let first: Vec<usize> = (0..6).map(|u| r.pick(&req(Some(u)), &loads)).collect();
    for _ in 0..3 {
        for u in 0..6 {
            assert_eq!(r.pick(&req(Some(u)), &loads), first[u as usize]);
        }
    }
    let anon: Vec<usize> = (0..5).map(|_| r.pick(&req(None), &loads)).collect();
    assert_eq!(anon, [0, 1, 2, 3, 0]);
}

/// Longest cached prefix first: instances 1 and 2 hold 5 blocks of the prompt, and 2
/// has fewer outstanding tokens. With no hit anywhere, least outstanding tokens,
/// then the lowest index.
#[test]
fn prefix_aware_prefers_the_longest_cached_prefix_then_the_least_tokens() {
    let mut r = router("prefix-aware");
    let hits = [
        load(0, 500, 2),
        load(0, 900, 5),
        load(9, 100, 5),
        load(0, 0, 4),
    ];
    assert_eq!(r.pick(&req(None), &hits), 2);
    let misses = [load(0, 300, 0), load(7, 100, 0), load(0, 100, 0)];
    assert_eq!(r.pick(&req(None), &misses), 1);
    // A hit beats any load difference.
    let one_hit = [load(0, 0, 0), load(50, 90_000, 1)];
    assert_eq!(r.pick(&req(None), &one_hit), 1);
}

/// A session's first request goes to the instance with the fewest outstanding
/// requests and the rest follow it, whatever the loads then; requests without a
/// session go by fewest outstanding requests.
#[test]
fn session_affinity_follows_the_first_request() {
    let mut r = router("session");
    assert_eq!(
        r.pick(
            &req(Some(7)),
            &[load(2, 0, 0), load(0, 0, 0), load(1, 0, 0)]
        ),
        1
    );
    let later = [load(0, 0, 0), load(5, 0, 0), load(0, 0, 0)];
    assert_eq!(r.pick(&req(Some(7)), &later), 1);
    assert_eq!(r.pick(&req(Some(8)), &later), 0);
    assert_eq!(
        r.pick(&req(None), &[load(3, 0, 0), load(5, 0, 0), load(2, 0, 0)]),
        2
    );
    assert_eq!(
        r.pick(
            &req(Some(8)),
            &[load(9, 0, 0), load(0, 0, 0), load(0, 0, 0)]
        ),
        0
    );
}

#[test]
fn the_registry_names_every_router_once_and_kinds_round_trip() {
    assert_eq!(NAMES.len(), REGISTRY.len());
    for (i, name) in NAMES.iter().enumerate() {
        assert_eq!(REGISTRY[i].name, *name);
        assert!(!NAMES[..i].contains(name), "{name} registered twice");
        let k = RouterKind::from_name(name).unwrap();
        assert_eq!(k.name(), *name);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<RouterKind>(&json).unwrap(), k);
    }
    assert!(NAMES.contains(&"prefix-aware") && NAMES.contains(&"session"));
    assert_eq!(RouterKind::from_name("fastest"), None);
    let err = serde_json::from_str::<RouterKind>("\"fastest\"").unwrap_err();
    assert!(
        err.to_string().contains("unknown router \"fastest\""),
        "{err}"
    );
    assert_eq!(RouterKind::Sticky, RouterKind::from_name("sticky").unwrap());
}

/// The Debug string is the old enum's (the run hash reads it).
#[test]
fn debug_prints_the_old_variant_names() {
    let d = |k: RouterKind| format!("{k:?}");
    assert_eq!(d(RouterKind::RoundRobin), "RoundRobin");
    assert_eq!(d(RouterKind::LeastTokens), "LeastTokens");
    assert_eq!(d(RouterKind::PowerOfTwo), "PowerOfTwo");
    assert_eq!(d(RouterKind::Sticky), "Sticky");
    assert_eq!(
        d(RouterKind::from_name("prefix-aware").unwrap()),
        "PrefixAware"
    );
}

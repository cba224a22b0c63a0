//! Q-container allocation over random request sequences on every topology.

use proptest::prelude::*;
use xdv_q::device::{Allocator, Coupling};

fn topology() -> impl Strategy<Value = Coupling> {
    prop_oneof![
        (2..30usize).prop_map(Coupling::Line),
        (3..30usize).prop_map(Coupling::Ring),
        (1..6usize, 1..6usize).prop_map(|(r, c)| Coupling::Grid(r, c)),
        (1..4usize, 3..12usize).prop_map(|(rows, width)| Coupling::HeavyHex { rows, width }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), failure_persistence: None, ..ProptestConfig::default() })]

    /// Containers never overlap, are always connected, and an allocation is a pure function of
    /// the requests before it.
    #[test]
    fn containers_stay_disjoint_and_connected(coupling in topology(), ops in proptest::collection::vec((0..6u32, 0..6usize, any::<bool>()), 1..40)) {
        let mut a = Allocator::new(coupling);
        let mut b = Allocator::new(coupling);
        for (owner, want, release) in ops {
            if release {
                prop_assert_eq!(a.release(owner), b.release(owner));
                continue;
            }
            if (0..a.qubits()).any(|q| a.owner_of(q) == Some(owner)) {
                continue;
            }
            let got = a.allocate(owner, want);
            prop_assert_eq!(&got, &b.allocate(owner, want), "deterministic");
            if let Ok(qs) = got {
                prop_assert_eq!(qs.len(), want);
                prop_assert!(a.connected(&qs));
                prop_assert!(qs.iter().all(|&q| a.owner_of(q) == Some(owner)));
            }
        }
    }

    /// Nested containers come out of their parent's qubits only, stay disjoint from their
    /// siblings, and go back to the parent (not to the device) when released.
    #[test]
    fn nested_containers_are_subsets_returned_to_their_parent(coupling in topology(), parent_size in 1..12usize, kids in proptest::collection::vec(1..4usize, 1..5)) {
        let mut a = Allocator::new(coupling);
        let Ok(parent) = a.allocate(100, parent_size) else { return Ok(()) };
        let mut held: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, want) in kids.into_iter().enumerate() {
            let owner = i as u32;
            if let Ok(qs) = a.allocate_in(owner, want, Some(100)) {
                prop_assert!(qs.iter().all(|q| parent.contains(q)), "a subset of the parent's");
                prop_assert!(a.connected(&qs));
                for (_, other) in &held {
                    prop_assert!(qs.iter().all(|q| !other.contains(q)));
                }
                held.push((owner, qs));
            }
        }
        let free_before = a.free();
        for (owner, qs) in held.into_iter().rev() {
            prop_assert_eq!(a.release(owner), qs.clone());
            prop_assert!(qs.iter().all(|&q| a.owner_of(q) == Some(100)));
        }
        prop_assert_eq!(a.free(), free_before, "nothing went back to the device");
        prop_assert_eq!(a.release(100), parent);
    }
}

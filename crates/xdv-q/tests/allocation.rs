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
}

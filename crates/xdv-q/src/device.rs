//! Device topologies and Q-container allocation.
//!
//! A device's qubits are linked by a coupling map (line, ring, grid, heavy-hex). A Q container
//! is a connected set of qubits of one device, disjoint from every other container; where the
//! map allows, it is also kept apart from them by a guard ring (no qubit of the new container is
//! adjacent to another container's), so crosstalk-prone neighbours are never shared. Allocation
//! is deterministic: the first fit from the lowest-numbered qubit, growing by the lowest-numbered
//! neighbour.

use std::collections::{BTreeMap, BTreeSet};

/// A coupling map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coupling {
    /// `n` qubits in a line.
    Line(usize),
    /// `n` qubits in a ring.
    Ring(usize),
    /// `rows × cols` qubits in a grid.
    Grid(usize, usize),
    /// IBM-style heavy hex: `rows` rows of `width` qubits, neighbouring rows linked through a
    /// bridge qubit every fourth column (columns 0, 4, 8… below even rows, 2, 6, 10… below odd).
    HeavyHex {
        /// Rows.
        rows: usize,
        /// Qubits per row.
        width: usize,
    },
}

impl Coupling {
    /// The number of qubits and the undirected edges (each once, `a < b`), sorted.
    pub fn graph(&self) -> (usize, Vec<(usize, usize)>) {
        let mut edges = Vec::new();
        let n = match *self {
            Coupling::Line(n) => {
                edges.extend((1..n).map(|i| (i - 1, i)));
                n
            }
            Coupling::Ring(n) => {
                edges.extend((1..n).map(|i| (i - 1, i)));
                if n > 2 {
                    edges.push((0, n - 1));
                }
                n
            }
            Coupling::Grid(r, c) => {
                for i in 0..r {
                    for j in 0..c {
                        let q = i * c + j;
                        if j + 1 < c {
                            edges.push((q, q + 1));
                        }
                        if i + 1 < r {
                            edges.push((q, q + c));
                        }
                    }
                }
                r * c
            }
            Coupling::HeavyHex { rows, width } => {
                let mut next = rows * width;
                for r in 0..rows {
                    edges.extend((1..width).map(|j| (r * width + j - 1, r * width + j)));
                    if r + 1 < rows {
                        let first = if r % 2 == 0 { 0 } else { 2 };
                        for j in (first..width).step_by(4) {
                            edges.push((r * width + j, next));
                            edges.push(((r + 1) * width + j, next));
                            next += 1;
                        }
                    }
                }
                next
            }
        };
        let mut edges: Vec<(usize, usize)> = edges
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        (n, edges)
    }
}

/// Hands out disjoint, connected sets of a device's qubits.
#[derive(Debug, Clone)]
pub struct Allocator {
    adjacency: Vec<Vec<usize>>,
    owner: Vec<Option<u32>>,
    /// Where each owner's qubits came from: the device (`None`) or a parent container.
    pools: BTreeMap<u32, Option<u32>>,
}

impl Allocator {
    /// An allocator over a coupling map with every qubit free.
    pub fn new(coupling: Coupling) -> Self {
        let (n, edges) = coupling.graph();
        let mut adjacency = vec![Vec::new(); n];
        for (a, b) in edges {
            adjacency[a].push(b);
            adjacency[b].push(a);
        }
        adjacency.iter_mut().for_each(|v| v.sort_unstable());
        Self {
            adjacency,
            owner: vec![None; n],
            pools: BTreeMap::new(),
        }
    }

    /// Qubits of the device.
    pub fn qubits(&self) -> usize {
        self.owner.len()
    }

    /// Free qubits.
    pub fn free(&self) -> usize {
        self.owner.iter().filter(|o| o.is_none()).count()
    }

    /// Allocates `want` connected free qubits of the device to `owner`: first with a guard ring,
    /// then, if that is impossible, without one. Returns the qubits, sorted, or why nothing fits.
    pub fn allocate(&mut self, owner: u32, want: usize) -> Result<Vec<usize>, String> {
        self.allocate_in(owner, want, None)
    }

    /// Allocates `want` connected qubits to `owner` out of `pool`: the device's free qubits
    /// (`None`) or those a container `Some(parent)` holds and has not lent out — how a nested
    /// child gets a subset of its parent's qubits. The guard ring keeps the new set away from
    /// every other owner except the pool itself. [`Allocator::release`] returns the qubits to the pool.
    pub fn allocate_in(
        &mut self,
        owner: u32,
        want: usize,
        pool: Option<u32>,
    ) -> Result<Vec<usize>, String> {
        if want == 0 {
            return Err("a container needs at least one qubit".into());
        }
        if self.pools.contains_key(&owner) || pool == Some(owner) {
            return Err(format!("container {owner} already holds qubits"));
        }
        let guarded: Vec<bool> = (0..self.qubits())
            .map(|q| {
                self.adjacency[q]
                    .iter()
                    .any(|&n| self.owner[n].is_some_and(|o| o != owner && Some(o) != pool))
            })
            .collect();
        for use_guard in [true, false] {
            let allowed = |q: usize| self.owner[q] == pool && !(use_guard && guarded[q]);
            for start in (0..self.qubits()).filter(|&q| allowed(q)) {
                let mut set = BTreeSet::from([start]);
                while set.len() < want {
                    let next = set
                        .iter()
                        .flat_map(|&q| self.adjacency[q].iter().copied())
                        .filter(|&q| allowed(q) && !set.contains(&q))
                        .min();
                    match next {
                        Some(q) => {
                            set.insert(q);
                        }
                        None => break,
                    }
                }
                if set.len() == want {
                    for &q in &set {
                        self.owner[q] = Some(owner);
                    }
                    self.pools.insert(owner, pool);
                    return Ok(set.into_iter().collect());
                }
            }
        }
        let free = self.owner.iter().filter(|o| **o == pool).count();
        Err(match pool {
            None => format!(
                "no {want} connected free qubits on this device ({free} of {} free)",
                self.qubits()
            ),
            Some(_) => format!(
                "no {want} connected qubits left in the parent's container ({free} not lent out)"
            ),
        })
    }

    /// Returns every qubit `owner` holds to the pool it came from; returns them, sorted. The
    /// owner's own children must have released theirs first.
    pub fn release(&mut self, owner: u32) -> Vec<usize> {
        let pool = self.pools.remove(&owner).unwrap_or(None);
        debug_assert!(
            !self.pools.values().any(|p| *p == Some(owner)),
            "container {owner} released before its children"
        );
        let mut freed = Vec::new();
        for (q, o) in self.owner.iter_mut().enumerate() {
            if *o == Some(owner) {
                *o = pool;
                freed.push(q);
            }
        }
        freed
    }

    /// The device's adjacency lists (sorted).
    pub fn adjacency(&self) -> &[Vec<usize>] {
        &self.adjacency
    }

    /// Who holds qubit `q`.
    pub fn owner_of(&self, q: usize) -> Option<u32> {
        self.owner[q]
    }

    /// `true` when `qubits` induce a connected subgraph.
    pub fn connected(&self, qubits: &[usize]) -> bool {
        let Some(&first) = qubits.first() else {
            return true;
        };
        let set: BTreeSet<usize> = qubits.iter().copied().collect();
        let mut seen = BTreeSet::from([first]);
        let mut stack = vec![first];
        while let Some(q) = stack.pop() {
            for &n in &self.adjacency[q] {
                if set.contains(&n) && seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        seen.len() == set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_have_the_expected_sizes() {
        assert_eq!(
            Coupling::Line(5).graph(),
            (5, vec![(0, 1), (1, 2), (2, 3), (3, 4)])
        );
        assert_eq!(Coupling::Ring(4).graph().1.len(), 4);
        assert_eq!(
            Coupling::Grid(3, 4).graph(),
            (12, Coupling::Grid(3, 4).graph().1)
        );
        assert_eq!(Coupling::Grid(3, 4).graph().1.len(), 3 * 3 + 2 * 4);
        // The 27-qubit Falcon-like layout: 3 rows of 7 plus 6 bridges… here 3 rows of 9 give
        // 27 + bridges; every qubit has degree ≤ 3, as on heavy-hex devices.
        let (n, edges) = Coupling::HeavyHex { rows: 3, width: 9 }.graph();
        let mut degree = vec![0; n];
        for (a, b) in &edges {
            degree[*a] += 1;
            degree[*b] += 1;
        }
        assert!(degree.iter().all(|&d| (1..=3).contains(&d)), "{degree:?}");
        assert_eq!(n, 27 + 3 + 2);
    }

    #[test]
    fn containers_are_disjoint_connected_guarded_and_deterministic() {
        let mut a = Allocator::new(Coupling::Line(12));
        assert_eq!(a.allocate(1, 3).unwrap(), vec![0, 1, 2]);
        // Qubit 3 is the guard ring: the next container starts at 4.
        assert_eq!(a.allocate(2, 3).unwrap(), vec![4, 5, 6]);
        assert_eq!(a.allocate(3, 4).unwrap(), vec![8, 9, 10, 11]);
        // No guarded room is left; single qubits still fit next to others.
        assert_eq!(a.allocate(4, 1).unwrap(), vec![3]);
        assert_eq!(a.allocate(5, 1).unwrap(), vec![7]);
        assert!(a
            .allocate(7, 1)
            .unwrap_err()
            .contains("no 1 connected free qubits"));
        assert_eq!(a.release(2), vec![4, 5, 6]);
        assert_eq!(a.allocate(6, 2).unwrap(), vec![4, 5]);
        let mut g = Allocator::new(Coupling::Grid(4, 4));
        for owner in 0..3 {
            let qs = g.allocate(owner, 4).unwrap();
            assert!(g.connected(&qs), "{qs:?}");
        }
        let mut h = Allocator::new(Coupling::HeavyHex { rows: 3, width: 9 });
        let qs = h.allocate(0, 7).unwrap();
        assert!(h.connected(&qs));
    }
}

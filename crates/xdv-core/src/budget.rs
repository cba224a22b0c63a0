//! Budgets: a VHM's quotas, from which its children's are carved (seL4 untyped, Zircon jobs).
//!
//! A budget holds the VHM's `quota`, what the VHM itself uses, and what is carved out for its
//! live children. The invariant, asserted after every change: own use + carved ≤ quota, in every
//! dimension. A child's quota is carved when it is spawned; when it stops, its quota comes back
//! and the fuel it consumed stays consumed (charged to the parent's budget).

use serde::{Deserialize, Serialize};

/// Amounts of each resource a budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    /// vCPUs.
    pub vcpus: u32,
    /// Linear memory, bytes.
    pub memory: u64,
    /// Fuel.
    pub fuel: u64,
    /// Levels of nesting allowed below the VHM (0: no children).
    pub depth: u32,
    /// Live direct children allowed.
    pub children: u32,
}

/// A VHM's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Budget {
    /// What the VHM was given.
    pub quota: Quota,
    /// vCPUs the VHM runs itself.
    pub own_vcpus: u32,
    /// Memory the VHM's own vCPUs may use (vCPUs × memory limit).
    pub own_memory: u64,
    /// Fuel the VHM consumed itself, plus what its stopped children consumed.
    pub fuel_spent: u64,
    /// Host memory held on the VHM's behalf beyond its linear memories (queued IPC messages it
    /// sent, module code it loaded), bytes; part of its memory quota, like its own memory.
    pub held: u64,
    /// Sum of the quotas of the live children (`children` counts them).
    pub carved: Quota,
}

/// Why a carve, a hold or a charge was refused, naming the dimension and both amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CarveError {
    /// The VHM's nesting depth allows no children.
    NoChildren,
    /// The child would nest deeper than allowed.
    Depth {
        /// The deepest a child may nest below the VHM.
        max: u32,
        /// Asked.
        asked: u32,
    },
    /// The VHM has as many live children as allowed.
    Children {
        /// Live.
        live: u32,
        /// Allowed.
        allowed: u32,
    },
    /// vCPUs asked beyond what is left.
    Vcpus {
        /// Asked.
        asked: u32,
        /// Left.
        left: u32,
    },
    /// Memory asked (a child's quota, or bytes to hold) beyond what is left.
    Memory {
        /// Asked, bytes.
        asked: u64,
        /// Left, bytes.
        left: u64,
    },
    /// Fuel asked (a child's quota, or host work to charge) beyond what is left.
    Fuel {
        /// Asked.
        asked: u64,
        /// Left.
        left: u64,
    },
}

impl std::fmt::Display for CarveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CarveError::NoChildren => f.write_str("nesting depth: this VHM may not have children"),
            CarveError::Depth { max, asked } => write!(
                f,
                "nesting depth: a child may nest at most {max} level(s) below it, asked {asked}"
            ),
            CarveError::Children { live, allowed } => {
                write!(f, "child count: {live} live of {allowed} allowed")
            }
            CarveError::Vcpus { asked, left } => write!(f, "vcpus: asked {asked}, {left} left"),
            CarveError::Memory { asked, left } => {
                write!(f, "memory: asked {asked} bytes, {left} left")
            }
            CarveError::Fuel { asked, left } => write!(f, "fuel: asked {asked}, {left} left"),
        }
    }
}

impl Budget {
    /// A budget whose own use is `vcpus` vCPUs of `memory_limit` bytes each.
    pub fn new(quota: Quota, vcpus: u32, memory_limit: u64) -> Self {
        let b = Self {
            quota,
            own_vcpus: vcpus,
            own_memory: u64::from(vcpus) * memory_limit,
            fuel_spent: 0,
            held: 0,
            carved: Quota::default(),
        };
        b.assert_conserved();
        b
    }

    /// Fuel left for the VHM's own vCPUs: quota − spent − carved.
    pub fn fuel_left(&self) -> u64 {
        self.quota.fuel - self.fuel_spent - self.carved.fuel
    }

    /// Memory left for host-held bytes or children: quota − own memory − held − carved.
    pub fn memory_left(&self) -> u64 {
        self.quota.memory - self.own_memory - self.held - self.carved.memory
    }

    /// Holds `bytes` of host memory for the VHM (a queued message, loaded code).
    ///
    /// # Errors
    ///
    /// [`CarveError`] naming both amounts when they do not fit what is left; nothing changes.
    pub fn hold(&mut self, bytes: u64) -> Result<(), CarveError> {
        let left = self.memory_left();
        if bytes > left {
            return Err(CarveError::Memory { asked: bytes, left });
        }
        self.held += bytes;
        self.assert_conserved();
        Ok(())
    }

    /// Lets go of `bytes` held by [`Budget::hold`].
    pub fn unhold(&mut self, bytes: u64) {
        assert!(bytes <= self.held, "unhold {bytes} of {} held", self.held);
        self.held -= bytes;
    }

    /// Charges `fuel` of host work done for the VHM outside its vCPUs (timer ticks, Q
    /// simulation), when it fits what is left.
    ///
    /// # Errors
    ///
    /// [`CarveError`] naming both amounts when the fuel left cannot pay; nothing is charged.
    pub fn charge(&mut self, fuel: u64) -> Result<(), CarveError> {
        let left = self.fuel_left();
        if fuel > left {
            return Err(CarveError::Fuel { asked: fuel, left });
        }
        self.spend(fuel);
        Ok(())
    }

    /// Checks whether `child` fits in what is left, without changing anything.
    pub fn can_carve(&self, child: &Quota) -> Result<(), CarveError> {
        let q = &self.quota;
        let c = &self.carved;
        if q.depth == 0 {
            return Err(CarveError::NoChildren);
        }
        if child.depth >= q.depth {
            return Err(CarveError::Depth {
                max: q.depth - 1,
                asked: child.depth,
            });
        }
        if c.children >= q.children {
            return Err(CarveError::Children {
                live: c.children,
                allowed: q.children,
            });
        }
        let vcpus_left = q.vcpus - self.own_vcpus - c.vcpus;
        if child.vcpus > vcpus_left {
            return Err(CarveError::Vcpus {
                asked: child.vcpus,
                left: vcpus_left,
            });
        }
        let memory_left = self.memory_left();
        if child.memory > memory_left {
            return Err(CarveError::Memory {
                asked: child.memory,
                left: memory_left,
            });
        }
        if child.fuel > self.fuel_left() {
            return Err(CarveError::Fuel {
                asked: child.fuel,
                left: self.fuel_left(),
            });
        }
        Ok(())
    }

    /// Carves `child` out of the budget.
    pub fn carve(&mut self, child: &Quota) -> Result<(), CarveError> {
        self.can_carve(child)?;
        self.carved.vcpus += child.vcpus;
        self.carved.memory += child.memory;
        self.carved.fuel += child.fuel;
        self.carved.children += 1;
        self.assert_conserved();
        Ok(())
    }

    /// Returns a stopped child's quota; the `fuel_used` it consumed stays spent.
    pub fn give_back(&mut self, child: &Quota, fuel_used: u64) {
        assert!(
            fuel_used <= child.fuel,
            "a child cannot spend more fuel than it was given"
        );
        assert!(self.carved.children > 0, "give_back without a live child");
        self.carved.vcpus -= child.vcpus;
        self.carved.memory -= child.memory;
        self.carved.fuel -= child.fuel;
        self.carved.children -= 1;
        self.fuel_spent += fuel_used;
        self.assert_conserved();
    }

    /// Charges fuel the VHM consumed itself.
    pub fn spend(&mut self, fuel: u64) {
        self.fuel_spent += fuel;
        self.assert_conserved();
    }

    /// Takes back fuel charged for work that was never observed (a step that ran ahead of a stop).
    pub fn refund(&mut self, fuel: u64) {
        self.fuel_spent -= fuel;
    }

    /// Own use + carved ≤ quota in every dimension.
    pub fn conserved(&self) -> bool {
        let (q, c) = (&self.quota, &self.carved);
        u64::from(self.own_vcpus) + u64::from(c.vcpus) <= u64::from(q.vcpus)
            && self
                .own_memory
                .checked_add(c.memory)
                .and_then(|m| m.checked_add(self.held))
                .is_some_and(|m| m <= q.memory)
            && self
                .fuel_spent
                .checked_add(c.fuel)
                .is_some_and(|f| f <= q.fuel)
            && c.children <= q.children
    }

    fn assert_conserved(&self) {
        assert!(self.conserved(), "budget not conserved: {self:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(vcpus: u32, memory: u64, fuel: u64, depth: u32, children: u32) -> Quota {
        Quota {
            vcpus,
            memory,
            fuel,
            depth,
            children,
        }
    }

    #[test]
    fn carving_respects_every_dimension_and_gives_back() {
        let mut b = Budget::new(q(4, 4 << 16, 1000, 2, 2), 1, 1 << 16);
        assert!(b.carve(&q(2, 2 << 16, 400, 1, 0)).is_ok());
        assert_eq!(
            b.can_carve(&q(2, 1 << 16, 100, 0, 0)),
            Err(CarveError::Vcpus { asked: 2, left: 1 })
        );
        assert_eq!(
            b.can_carve(&q(1, 2 << 16, 100, 0, 0)),
            Err(CarveError::Memory {
                asked: 2 << 16,
                left: 1 << 16
            })
        );
        assert_eq!(
            b.can_carve(&q(1, 1 << 16, 601, 0, 0)),
            Err(CarveError::Fuel {
                asked: 601,
                left: 600
            })
        );
        assert_eq!(
            b.can_carve(&q(1, 1 << 16, 1, 2, 0)),
            Err(CarveError::Depth { max: 1, asked: 2 })
        );
        b.carve(&q(1, 1 << 16, 100, 0, 0)).unwrap();
        assert_eq!(
            b.can_carve(&q(0, 0, 0, 0, 0)),
            Err(CarveError::Children {
                live: 2,
                allowed: 2
            })
        );
        b.give_back(&q(2, 2 << 16, 400, 1, 0), 150);
        assert_eq!(b.fuel_left(), 1000 - 150 - 100);
        assert!(b.conserved());
    }

    #[test]
    fn held_memory_and_charged_fuel_come_out_of_the_same_budget() {
        let mut b = Budget::new(q(2, 4 << 16, 1000, 2, 2), 1, 1 << 16);
        b.hold(2 << 16).unwrap();
        assert_eq!(
            b.hold((1 << 16) + 1),
            Err(CarveError::Memory {
                asked: (1 << 16) + 1,
                left: 1 << 16
            })
        );
        assert!(b.can_carve(&q(1, 2 << 16, 1, 0, 0)).is_err());
        b.unhold(2 << 16);
        assert!(b.can_carve(&q(1, 2 << 16, 1, 0, 0)).is_ok());
        b.charge(600).unwrap();
        assert_eq!(
            b.charge(401),
            Err(CarveError::Fuel {
                asked: 401,
                left: 400
            })
        );
        assert_eq!(b.fuel_left(), 400);
    }
}

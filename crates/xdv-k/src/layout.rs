//! The structures the ABI passes through guest memory, as little-endian layouts: every field's
//! offset and the structure's size follow from the type (`docs/abi.md` lists them), and the
//! hypervisor reads and writes guests through these types only, never by counted offsets.
//!
//! Every field is a little-endian integer of alignment 1, so `repr(C)` leaves no padding and the
//! sizes below are checked at compile time.

use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Defines the ABI's structures and [`STRUCTS`], their description for the SDK generators,
/// from one list: a field added here is in the host, the C header and the Rust SDK at once.
macro_rules! abi_structs {
    ($(
        $(#[doc = $doc:literal])*
        pub struct $name:ident as $c:literal {
            $( $(#[doc = $fdoc:literal])* pub $field:ident: $ty:ty, )*
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
            #[repr(C)]
            pub struct $name {
                $( $(#[doc = $fdoc])* pub $field: $ty, )*
            }

            impl AbiField for $name {
                const TYPE: FieldType = FieldType::Struct(stringify!($name));
            }
        )*

        /// Every structure of the ABI, in the order the SDKs declare them.
        pub const STRUCTS: &[StructDesc] = &[$(
            StructDesc {
                name: stringify!($name),
                c_name: $c,
                doc: &[$($doc),*],
                size: size::<$name>(),
                fields: &[$(
                    FieldDesc {
                        name: stringify!($field),
                        doc: &[$($fdoc),*],
                        offset: std::mem::offset_of!($name, $field) as u32,
                        ty: <$ty as AbiField>::TYPE,
                    },
                )*],
            },
        )*];
    };
}

/// The type of a structure field, as the SDK generators spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A little-endian `u32`.
    U32,
    /// A little-endian `u64`.
    U64,
    /// A little-endian `i64`.
    I64,
    /// Another ABI structure, by its Rust name.
    Struct(&'static str),
}

/// The types a structure field may have.
pub trait AbiField {
    /// How the SDK generators spell it.
    const TYPE: FieldType;
}

impl AbiField for U32 {
    const TYPE: FieldType = FieldType::U32;
}
impl AbiField for U64 {
    const TYPE: FieldType = FieldType::U64;
}
impl AbiField for I64 {
    const TYPE: FieldType = FieldType::I64;
}

/// One field of an ABI structure.
#[derive(Debug, Clone, Copy)]
pub struct FieldDesc {
    /// Its name.
    pub name: &'static str,
    /// Its doc comment, one entry per line.
    pub doc: &'static [&'static str],
    /// Its offset in bytes.
    pub offset: u32,
    /// Its type.
    pub ty: FieldType,
}

/// One ABI structure: what the C header and the Rust SDK declare.
#[derive(Debug, Clone, Copy)]
pub struct StructDesc {
    /// The Rust name (`SpawnSpec`).
    pub name: &'static str,
    /// The C name (`xdv_spawn_spec`).
    pub c_name: &'static str,
    /// Its doc comment, one entry per line.
    pub doc: &'static [&'static str],
    /// Its size in bytes.
    pub size: u32,
    /// Its fields, in order.
    pub fields: &'static [FieldDesc],
}

impl StructDesc {
    /// The structure named `name` (its Rust name).
    pub fn by_name(name: &str) -> Option<&'static StructDesc> {
        STRUCTS.iter().find(|s| s.name == name)
    }
}

impl FieldType {
    /// Size in bytes, which is also the field's natural alignment for the integer types.
    pub fn size(self) -> u32 {
        match self {
            FieldType::U32 => 4,
            FieldType::U64 | FieldType::I64 => 8,
            FieldType::Struct(n) => StructDesc::by_name(n).map_or(0, |s| s.size),
        }
    }

    /// Natural alignment on wasm32 (what C and `repr(C)` Rust give the field).
    pub fn align(self) -> u32 {
        match self {
            FieldType::U32 => 4,
            FieldType::U64 | FieldType::I64 => 8,
            FieldType::Struct(n) => StructDesc::by_name(n).map_or(1, |s| {
                s.fields.iter().map(|f| f.ty.align()).max().unwrap_or(1)
            }),
        }
    }
}

abi_structs! {
    /// The `vhm_spawn` spec without a Q container (88 bytes).
    pub struct SpawnSpec as "xdv_spawn_spec_t" {
        /// Handle of the caller's own budget, with `spawn`.
        pub budget: U64,
        /// Handle of a module with `spawn`; 0: the module is `code`.
        pub module: U64,
        /// A WebAssembly binary in the caller's memory (when `module` is 0).
        pub code_ptr: U32,
        /// Its length.
        pub code_len: U32,
        /// The child's short name.
        pub name_ptr: U32,
        /// Its length.
        pub name_len: U32,
        /// vCPUs of the child.
        pub vcpus: U32,
        /// vCPUs of the child and all its descendants.
        pub vcpu_quota: U32,
        /// Linear memory per vCPU, bytes.
        pub memory_limit: U64,
        /// Memory of the child and its descendants, bytes.
        pub memory_quota: U64,
        /// Fuel of the child and its descendants.
        pub fuel_quota: U64,
        /// Scheduling weight.
        pub weight: U32,
        /// Bit 0: fault on bad hypercalls; bit 1: may create channels.
        pub flags: U32,
        /// Levels of nesting allowed below the child.
        pub max_depth: U32,
        /// Live children the child may have.
        pub max_children: U32,
        /// Capabilities to pass.
        pub caps_count: U32,
        /// Where their [`PassedCap`] entries are.
        pub caps_ptr: U32,
    }

    /// The `vhm_spawn` spec with a Q container carved from the caller's (104 bytes).
    pub struct SpawnSpecQ as "xdv_spawn_spec_q_t" {
        /// The first 88 bytes.
        pub spec: SpawnSpec,
        /// Logical qubits carved from the caller's container (0: none).
        pub q_qubits: U32,
        /// Must be 0.
        pub reserved: U32,
        /// Decoherence budget lent, µ.
        pub q_budget: U64,
    }

    /// One capability passed at spawn (24 bytes).
    pub struct PassedCap as "xdv_passed_cap_t" {
        /// Handle in the caller's table, with `transfer`.
        pub handle: U64,
        /// Rights of the child's copy.
        pub rights: U32,
        /// Ignored.
        pub reserved: U32,
        /// Badge (0 keeps the held one's).
        pub badge: U64,
    }

    /// What `cap_info` writes (24 bytes).
    pub struct CapInfo as "xdv_cap_info_t" {
        /// Object type, 1 to 8.
        pub object_type: U32,
        /// Rights.
        pub rights: U32,
        /// Badge (0: none).
        pub badge: U64,
        /// The object's number as the holder sees it.
        pub number: U64,
    }

    /// The two endpoint handles `ipc_channel` writes (16 bytes).
    pub struct ChannelEnds as "xdv_channel_ends_t" {
        /// End 0.
        pub end0: U64,
        /// End 1.
        pub end1: U64,
    }

    /// The header `ipc_recv` writes before the payload (16 bytes).
    pub struct RecvHeader as "xdv_recv_header_t" {
        /// The sender's badge (0: none).
        pub badge: U64,
        /// The transferred capability's handle in the receiver's table (0: none).
        pub cap: U64,
    }

    /// The `phi_window` spec (48 bytes).
    pub struct WindowSpec as "xdv_window_spec_t" {
        /// The port's index.
        pub port: U32,
        /// Bit 0: share grant.
        pub flags: U32,
        /// Start, ns.
        pub t0: U64,
        /// End, ns (exclusive).
        pub t1: U64,
        /// Lowest frequency, Hz.
        pub band_lo: I64,
        /// Highest frequency, Hz (inclusive).
        pub band_hi: I64,
        /// Amplitude cap, ppm.
        pub max_amp: U32,
        /// Must be 0.
        pub reserved: U32,
    }

    /// What `phi_frame` writes (32 bytes).
    pub struct FrameInfo as "xdv_frame_info_t" {
        /// Frequency, Hz.
        pub freq: I64,
        /// Phase, 2⁻⁶⁴ turns.
        pub phase: U64,
        /// Clock, ns.
        pub clock: U64,
        /// 1 when the phase is defined.
        pub defined: U64,
    }

    /// One capture `phi_exec` writes (16 bytes).
    pub struct Capture as "xdv_capture_t" {
        /// In-phase, µ.
        pub i: I64,
        /// Quadrature, µ.
        pub q: I64,
    }
}

/// Size of `T` as the ABI counts it.
pub const fn size<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

const _: () = {
    assert!(size::<SpawnSpec>() == 88);
    assert!(size::<SpawnSpecQ>() == 104);
    assert!(size::<PassedCap>() == 24);
    assert!(size::<CapInfo>() == 24);
    assert!(size::<ChannelEnds>() == 16);
    assert!(size::<RecvHeader>() == 16);
    assert!(size::<WindowSpec>() == 48);
    assert!(size::<FrameInfo>() == 32);
    assert!(size::<Capture>() == 16);
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The offsets `docs/abi.md` documents.
    #[test]
    fn offsets_are_the_documented_ones() {
        assert_eq!(offset_of!(SpawnSpec, code_ptr), 16);
        assert_eq!(offset_of!(SpawnSpec, name_ptr), 24);
        assert_eq!(offset_of!(SpawnSpec, vcpus), 32);
        assert_eq!(offset_of!(SpawnSpec, memory_limit), 40);
        assert_eq!(offset_of!(SpawnSpec, fuel_quota), 56);
        assert_eq!(offset_of!(SpawnSpec, weight), 64);
        assert_eq!(offset_of!(SpawnSpec, caps_count), 80);
        assert_eq!(offset_of!(SpawnSpecQ, q_qubits), 88);
        assert_eq!(offset_of!(SpawnSpecQ, reserved), 92);
        assert_eq!(offset_of!(SpawnSpecQ, q_budget), 96);
        assert_eq!(offset_of!(PassedCap, badge), 16);
        assert_eq!(offset_of!(CapInfo, number), 16);
        assert_eq!(offset_of!(WindowSpec, band_lo), 24);
        assert_eq!(offset_of!(WindowSpec, max_amp), 40);
        assert_eq!(offset_of!(WindowSpec, reserved), 44);
        assert_eq!(offset_of!(FrameInfo, defined), 24);
    }

    /// Fields follow each other without gaps at their natural wasm32 alignment, so a C `struct`
    /// or a `repr(C)` Rust struct of native integers (what the SDKs declare) has the same layout.
    #[test]
    fn every_structure_is_naturally_aligned_and_packed() {
        for s in STRUCTS {
            let mut at = 0;
            for f in s.fields {
                assert_eq!(f.offset, at, "{}.{} leaves a gap", s.name, f.name);
                assert_eq!(
                    f.offset % f.ty.align(),
                    0,
                    "{}.{} is misaligned",
                    s.name,
                    f.name
                );
                at += f.ty.size();
            }
            assert_eq!(at, s.size, "{} has trailing padding", s.name);
            assert_eq!(s.size % FieldType::Struct(s.name).align(), 0, "{}", s.name);
            assert!(!s.doc.is_empty() && s.fields.iter().all(|f| !f.doc.is_empty()));
        }
        assert_eq!(STRUCTS.len(), 9);
    }

    #[test]
    fn reads_little_endian_from_unaligned_bytes() {
        let mut b = [0u8; 1 + 48];
        b[1..5].copy_from_slice(&7u32.to_le_bytes());
        b[1 + 24..1 + 32].copy_from_slice(&(-5i64).to_le_bytes());
        let w = WindowSpec::read_from_bytes(&b[1..]).unwrap();
        assert_eq!((w.port.get(), w.band_lo.get()), (7, -5));
        assert_eq!(w.as_bytes(), &b[1..]);
    }
}

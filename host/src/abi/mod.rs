//! The device ABI: every structure and constant that host and device code share through memory, defined once.
//!
//! Everything a GPU (or the CPU reference device) reads or writes in shared memory is here, as `#[repr(C)]`
//! [`bytemuck::Pod`] structs and `u32`/`u64` constants, with compile-time asserts of every size and offset
//! beside each type. Device languages do not retype any of it: [`header::render`] turns this module into one
//! C header (`abi/gpu_uring_abi.h` at the repository root) that GLSL (`GL_GOOGLE_include_directive`), HIP and
//! CUDA include. Regenerate it with
//!
//! ```text
//! cargo run -p gpu-uring --example gen-abi-header          # rewrites abi/gpu_uring_abi.h
//! cargo run -p gpu-uring --example gen-abi-header -- --check  # fails if the committed header is stale
//! ```
//!
//! | module | what | spec |
//! | --- | --- | --- |
//! | [`ring`] | [`RingLayout`] (push constants / kernel argument), [`DeviceControl`], [`CompletionSlot`], ring slot states, `user_data` tags, print flags, wait statuses, ring flags | PROTOCOL.md §2–§7 |
//! | [`uring`] | the kernel's SQE/CQE layouts and the io_uring opcodes and SQE flags device code uses | `io_uring.h` |
//! | [`queue`] | the io_queue: [`QueueHeader`], [`IoSlot`], [`RegionDesc`], [`PumpLayout`], slot states, ops, error codes, pump states | PROTOCOL.md "io_queue" |
//! | [`run`] | the run buffers of resumable programs: [`RunParams`], [`RunHeader`], [`LaneState`], [`PumpRunParams`], [`PumpLaneState`] and their flags | — |
//!
//! States and codes are `#[repr(u32)]` enums with `TryFrom<u32>` (an unknown value is an [`UnknownValue`]
//! error, never a panic: these words are device-written); the raw `u32` constants the wire uses are derived
//! from the enums, so each value is written once.
//!
//! This is the lowest layer of the crate: it imports nothing from it.

#![deny(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

/// A `u32` read from shared memory that names no value of the enum it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} (0x{value:x}) is not a valid {what}")]
pub struct UnknownValue {
    /// What the value should have been (e.g. "io_queue slot state").
    pub what: &'static str,
    /// The value found.
    pub value: u32,
}

/// Defines a `#[repr(u32)]` wire enum: the enum, `TryFrom<u32>`, `From<Self> for u32`, `ALL`, and `name()`
/// (the lower-case name the C header upper-cases after its prefix).
macro_rules! wire_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident : $what:literal {
            $( $(#[$vm:meta])* $var:ident = $val:literal => $cname:literal, )*
        }
    ) => {
        $(#[$m])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vm])* $var = $val, )*
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The value's short name.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$var => $cname,)*
                }
            }

            /// The raw wire value.
            #[inline]
            pub const fn raw(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $name {
            type Error = $crate::abi::UnknownValue;

            #[inline]
            fn try_from(value: u32) -> Result<Self, Self::Error> {
                match value {
                    $($val => Ok($name::$var),)*
                    _ => Err($crate::abi::UnknownValue { what: $what, value }),
                }
            }
        }

        impl $crate::abi::header::WireEnum for $name {
            const ALL: &'static [Self] = $name::ALL;

            fn name(self) -> &'static str {
                $name::name(self)
            }

            fn raw(self) -> u32 {
                self as u32
            }
        }

        impl From<$name> for u32 {
            #[inline]
            fn from(v: $name) -> u32 {
                v as u32
            }
        }
    };
}

/// Defines a shared struct (the attributes, `#[repr(C)]` and derives included, are written at the call site)
/// and its [`header::AbiStruct`] description, from which the C header takes field offsets and C++ views.
macro_rules! abi_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty, )*
        }
    ) => {
        $(#[$m])*
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )*
        }

        impl $crate::abi::header::AbiStruct for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [$crate::abi::header::Field] = &[
                $($crate::abi::header::Field {
                    name: stringify!($f),
                    offset: ::std::mem::offset_of!($name, $f),
                    c_type: <$t as $crate::abi::header::CType>::C_TYPE,
                    count: <$t as $crate::abi::header::CType>::COUNT,
                },)*
            ];
        }
    };
}

/// Compile-time asserts of a struct's size, alignment and field offsets.
macro_rules! pin_layout {
    ($name:ident, size = $size:literal, align = $align:literal { $($f:ident = $off:literal),* $(,)? }) => {
        const _: () = assert!(::std::mem::size_of::<$name>() == $size);
        const _: () = assert!(::std::mem::align_of::<$name>() == $align);
        $( const _: () = assert!(::std::mem::offset_of!($name, $f) == $off); )*
    };
}

pub mod header;
pub mod queue;
pub mod ring;
pub mod run;
pub mod uring;

pub use queue::*;
pub use ring::*;
pub use run::*;
pub use uring::*;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn try_from_rejects_unknown_values() {
        assert_eq!(QueueSlotState::try_from(4), Ok(QueueSlotState::Done));
        assert_eq!(RingSlotState::try_from(2), Ok(RingSlotState::Done));
        let e = QueueSlotState::try_from(6).unwrap_err();
        assert_eq!(e.value, 6);
        assert!(e.to_string().contains("io_queue slot state"), "{e}");
        assert!(QueueErrorCode::try_from(ERR_COUNT as u32).is_err());
        for (i, c) in QueueErrorCode::ALL.iter().enumerate() {
            assert_eq!(c.raw() as usize, i, "error codes index counters");
        }
    }
}

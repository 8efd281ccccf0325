//! How the ABI describes itself: the wire-enum and shared-struct macros every type in this module is defined
//! with, and the traits through which [`super::header`] reads names, values, fields and offsets.

/// A `u32` read from shared memory that names no value of the enum it should be.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} (0x{value:x}) is not a valid {what}")]
pub struct UnknownValue {
    /// What the value should have been (e.g. "io_queue slot state").
    pub what: &'static str,
    /// The value found.
    pub value: u32,
}

debug_as_display!(UnknownValue);

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

        impl $crate::abi::describe::WireEnum for $name {
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

        impl $crate::abi::describe::AbiStruct for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [$crate::abi::describe::Field] = &[
                $($crate::abi::describe::Field {
                    name: stringify!($f),
                    offset: ::std::mem::offset_of!($name, $f),
                    c_type: <$t as $crate::abi::describe::CType>::C_TYPE,
                    count: <$t as $crate::abi::describe::CType>::COUNT,
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

/// One field of an [`AbiStruct`].
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The Rust (and C++) field name.
    pub name: &'static str,
    /// Byte offset.
    pub offset: usize,
    /// The C element type.
    pub c_type: &'static str,
    /// Array length, or 0 for a scalar.
    pub count: usize,
}

/// A shared struct the header describes (implemented by the module's struct definitions).
pub trait AbiStruct: Sized {
    /// The struct's name (also its C++ name).
    const NAME: &'static str;
    /// Its fields in declaration order.
    const FIELDS: &'static [Field];
}

/// A field type's C spelling.
pub trait CType {
    /// The C element type.
    const C_TYPE: &'static str;
    /// Array length, or 0 for a scalar.
    const COUNT: usize;
}

macro_rules! c_scalar {
    ($($t:ty => $c:literal),*) => {
        $(impl CType for $t {
            const C_TYPE: &'static str = $c;
            const COUNT: usize = 0;
        })*
    };
}

c_scalar!(u8 => "uint8_t", u16 => "uint16_t", u32 => "uint32_t", i32 => "int32_t", u64 => "uint64_t");

impl<T: CType, const N: usize> CType for [T; N] {
    const C_TYPE: &'static str = T::C_TYPE;
    const COUNT: usize = N;
}

/// A `#[repr(u32)]` wire enum (implemented by the module's enum definitions).
pub trait WireEnum: Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// The value's short lower-case name.
    fn name(self) -> &'static str;
    /// The raw wire value.
    fn raw(self) -> u32;
}

//! A check that a value has no NaN or infinite number in it, before it is turned into JSON.
//! serde_json writes such a number as `null` without a word; the other SDKs refuse it, and so
//! does this one: `to_result` answers `LM_PLUGIN_ERROR` naming where it is.

use serde::ser::{self, Serialize};
use std::fmt;

/// Why a value cannot be sent: where its first non-finite number is.
#[derive(Debug)]
pub(crate) struct NotFinite(pub String);

impl fmt::Display for NotFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFinite {}

impl ser::Error for NotFinite {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotFinite(msg.to_string())
    }
}

/// Walk `value` as serde sees it; Err names the first NaN or infinity, by its path.
pub(crate) fn check_finite<T: Serialize + ?Sized>(value: &T) -> Result<(), NotFinite> {
    value.serialize(Probe { path: String::new() })
}

/// A serializer that writes nothing and only looks at the numbers.
struct Probe {
    path: String,
}

impl Probe {
    fn at(&self, key: &str) -> Probe {
        Probe { path: format!("{}/{}", self.path, key) }
    }
    fn float(&self, v: f64) -> Result<(), NotFinite> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(NotFinite(format!("{} at {}: JSON has no form for it", v, if self.path.is_empty() { "/" } else { &self.path })))
        }
    }
}

/// The compound parts: each element or field is probed at its own path.
struct Compound {
    probe: Probe,
    index: usize,
}

impl Compound {
    fn next(&mut self) -> Probe {
        let p = self.probe.at(&self.index.to_string());
        self.index += 1;
        p
    }
}

macro_rules! plain {
    ($($name:ident($t:ty)),*) => {
        $(fn $name(self, _v: $t) -> Result<(), NotFinite> { Ok(()) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = NotFinite;
    type SerializeSeq = Compound;
    type SerializeTuple = Compound;
    type SerializeTupleStruct = Compound;
    type SerializeTupleVariant = Compound;
    type SerializeMap = Compound;
    type SerializeStruct = Compound;
    type SerializeStructVariant = Compound;

    plain!(serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64), serialize_char(char), serialize_str(&str), serialize_bytes(&[u8]));

    fn serialize_f32(self, v: f32) -> Result<(), NotFinite> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), NotFinite> {
        self.float(v)
    }
    fn serialize_none(self) -> Result<(), NotFinite> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), NotFinite> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NotFinite> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotFinite> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), NotFinite> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), NotFinite> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, variant: &'static str, v: &T) -> Result<(), NotFinite> {
        v.serialize(self.at(variant))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self, index: 0 })
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self, index: 0 })
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self, index: 0 })
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self.at(variant), index: 0 })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self, index: 0 })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self, index: 0 })
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound, NotFinite> {
        Ok(Compound { probe: self.at(variant), index: 0 })
    }
}

macro_rules! elements {
    ($($tr:ident :: $method:ident),*) => {
        $(impl ser::$tr for Compound {
            type Ok = ();
            type Error = NotFinite;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotFinite> {
                let p = self.next();
                v.serialize(p)
            }
            fn end(self) -> Result<(), NotFinite> {
                Ok(())
            }
        })*
    };
}

elements!(SerializeSeq::serialize_element, SerializeTuple::serialize_element, SerializeTupleStruct::serialize_field, SerializeTupleVariant::serialize_field);

macro_rules! fields {
    ($($tr:ident),*) => {
        $(impl ser::$tr for Compound {
            type Ok = ();
            type Error = NotFinite;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), NotFinite> {
                v.serialize(self.probe.at(key))
            }
            fn end(self) -> Result<(), NotFinite> {
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound {
    type Ok = ();
    type Error = NotFinite;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), NotFinite> {
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotFinite> {
        let p = self.next();
        v.serialize(p)
    }
    fn end(self) -> Result<(), NotFinite> {
        Ok(())
    }
}

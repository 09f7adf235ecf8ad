//! Shared-memory segments (docs/shared-memory.md of LogoMesh): a segment is a file in the
//! pool the controller mounts at `LOGOMESH_SEGMENTS_DIR`, mapped with `mmap` (through `libc`)
//! so reading and writing it copy nothing. The kernel decides what this plugin may open (the
//! file's ACL); the hub checks handles in messages and grants access on the way.

use crate::bridge::{frame_message, frame_structured, unframe_message, unframe_structured};
use crate::ProtobufTypes;
use crate::calls::Hub;
use crate::Error;
use serde_json::{json, Map, Value};
use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the pool is mounted in this plugin (`None`: its manifest does not set sharedMemory).
pub fn segments_dir() -> Option<PathBuf> {
    std::env::var_os("LOGOMESH_SEGMENTS_DIR").map(PathBuf::from)
}

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    writable: bool,
}

// The mapping is plain memory owned by the Segment; moving it between threads is fine.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// A handle to one segment: `bytes` (a zero-copy slice of the shared pages), `writable`,
/// `read`, `write`, `slice`, `close`. `to_value` is its handle as a message carries it
/// (`{"$segment": {...}}`); pass `grant("read")` or `reference()` to `Hub::call_with` so the
/// hub checks (and grants) the receiver's access.
pub struct Segment {
    pub id: String,
    pub owner: String,
    pub size: u64,
    pub read_only: bool,
    pub path: String,
    map: Option<Mapping>,
}

impl Segment {
    /// A segment from a handle: `{"$segment": {...}}` or its fields alone.
    pub fn from_value(v: &Value) -> Result<Segment, Error> {
        let h = v.get("$segment").unwrap_or(v);
        let s = |k: &str| h.get(k).and_then(Value::as_str).map(str::to_string);
        match (s("id"), s("owner"), h.get("size").and_then(Value::as_u64), s("path")) {
            (Some(id), Some(owner), Some(size), Some(path)) => Ok(Segment { id, owner, size, read_only: h.get("readOnly").and_then(Value::as_bool).unwrap_or(false), path, map: None }),
            _ => Err(Error::new("LM_SEGMENT", "not a segment handle: {\"$segment\": {\"id\", \"owner\", \"size\", \"path\"}} expected")),
        }
    }

    /// The handle as it travels in data: `{"$segment": {...}}`.
    pub fn to_value(&self) -> Value {
        json!({ "$segment": { "id": self.id, "owner": self.owner, "size": self.size, "readOnly": self.read_only, "path": self.path } })
    }

    /// This segment in a message's `segments`, without a grant.
    pub fn reference(&self) -> Value {
        json!({ "id": self.id })
    }

    /// This segment in a message's `segments`, giving the receiver `access` ("read" or "write"): its owner only.
    pub fn grant(&self, access: &str) -> Value {
        json!({ "id": self.id, "grant": access })
    }

    fn mapping(&mut self, write: bool) -> Result<&Mapping, Error> {
        let reuse = matches!(&self.map, Some(m) if m.writable || !write);
        if !reuse {
            self.map = None;
            let dir = segments_dir().ok_or_else(|| Error::new("LM_SEGMENT", "this plugin has no shared-memory pool (set coordination.sharedMemory: true)"))?;
            let file = OpenOptions::new().read(true).write(write).open(dir.join(&self.path)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Error::new("LM_PERMISSION_DENIED", format!("the kernel refused to open segment {} for {}: this plugin was not given that access", self.id, if write { "writing" } else { "reading" }))
                } else {
                    Error::new("LM_SEGMENT", format!("segment {} cannot be opened: {e}", self.id))
                }
            })?;
            let prot = if write { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
            let len = self.size as usize;
            // MAP_POPULATE: the pages are mapped in one go, not one fault at a time.
            let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED | libc::MAP_POPULATE, file.as_raw_fd(), 0) };
            if ptr == libc::MAP_FAILED {
                return Err(Error::new("LM_SEGMENT", format!("segment {} cannot be mapped: {}", self.id, std::io::Error::last_os_error())));
            }
            self.map = Some(Mapping { ptr, len, writable: write });
        }
        Ok(self.map.as_ref().expect("mapped above"))
    }

    /// The whole segment, read-only: the shared pages themselves, no copy.
    pub fn bytes(&mut self) -> Result<&[u8], Error> {
        let m = self.mapping(false)?;
        Ok(unsafe { std::slice::from_raw_parts(m.ptr as *const u8, m.len) })
    }

    /// The whole segment, writable (the kernel refuses unless this plugin may write it).
    pub fn writable(&mut self) -> Result<&mut [u8], Error> {
        let m = self.mapping(true)?;
        Ok(unsafe { std::slice::from_raw_parts_mut(m.ptr as *mut u8, m.len) })
    }

    /// Bytes `[from, to)`, read-only, no copy.
    pub fn slice(&mut self, from: usize, to: usize) -> Result<&[u8], Error> {
        let b = self.bytes()?;
        if from > to || to > b.len() {
            return Err(Error::invalid_argument(format!("slice [{from}, {to}) is outside the segment's {} bytes", b.len())));
        }
        Ok(&b[from..to])
    }

    /// A copy of `len` bytes from `offset`.
    pub fn read(&mut self, offset: usize, len: usize) -> Result<Vec<u8>, Error> {
        Ok(self.slice(offset, offset + len)?.to_vec())
    }

    /// Copy `data` into the segment at `offset`.
    pub fn write(&mut self, data: &[u8], offset: usize) -> Result<(), Error> {
        if offset + data.len() > self.size as usize {
            return Err(Error::invalid_argument(format!("writing {} bytes at {offset} passes the segment's {} bytes", data.len(), self.size)));
        }
        self.writable()?[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Unmap it (the segment lives on until its owner frees it).
    pub fn close(&mut self) {
        self.map = None;
    }

    /// Write `value` as `json`, `msgpack` or `protobuf` with the data bridge's header.
    pub fn write_structured(&mut self, value: &Value, format: &str) -> Result<(), Error> {
        let b = frame_structured(value, format)?;
        if b.len() as u64 > self.size {
            return Err(Error::invalid_argument(format!("the data takes {} bytes in {format}; the segment has {}", b.len(), self.size)));
        }
        self.write(&b, 0)
    }

    /// The value it holds; `format`, when given, must match its header.
    pub fn read_structured(&mut self, format: Option<&str>) -> Result<Value, Error> {
        Ok(unframe_structured(self.bytes()?, format)?.0)
    }

    /// Write `value` as the declared message `type_name` of `types` (format protobuf,
    /// docs/data-bridge.md), with the data bridge's header.
    pub fn write_message(&mut self, types: &ProtobufTypes, type_name: &str, value: &Value) -> Result<(), Error> {
        let b = frame_message(types, type_name, value)?;
        if b.len() as u64 > self.size {
            return Err(Error::invalid_argument(format!("the data takes {} bytes as {type_name}; the segment has {}", b.len(), self.size)));
        }
        self.write(&b, 0)
    }

    /// The declared message `type_name` it holds, as proto3 JSON.
    pub fn read_message(&mut self, types: &ProtobufTypes, type_name: &str) -> Result<Value, Error> {
        unframe_message(self.bytes()?, types, type_name)
    }

    fn update(&mut self, v: &Value) -> Result<(), Error> {
        let fresh = Segment::from_value(v)?;
        self.close();
        self.size = fresh.size;
        self.read_only = fresh.read_only;
        Ok(())
    }
}

impl Hub {
    /// Ask the pool (`op` and its fields); the answer's data.
    pub fn segment_op(&self, op: &str, fields: Value) -> Result<Value, Error> {
        let mut msg = Map::new();
        msg.insert("type".into(), "segment".into());
        msg.insert("op".into(), op.into());
        if let Value::Object(f) = fields {
            msg.extend(f);
        }
        self.shared.exchange(msg, OP_TIMEOUT)
    }

    /// A new segment of `size` bytes (zeroed), owned by this plugin, which alone may open it until it shares it.
    pub fn allocate(&self, size: u64) -> Result<Segment, Error> {
        Segment::from_value(&self.segment_op("allocate", json!({ "size": size }))?)
    }

    /// The segment published under `key` (read-only), with read access given to this plugin.
    pub fn lookup(&self, key: &str) -> Result<Segment, Error> {
        Segment::from_value(&self.segment_op("lookup", json!({ "key": key }))?)
    }

    /// Exactly these plugins (besides the owner) may open it, with `access` ("read" or "write").
    pub fn share(&self, seg: &Segment, plugins: &[&str], access: &str) -> Result<(), Error> {
        self.segment_op("share", json!({ "segment": seg.id, "plugins": plugins, "access": access })).map(|_| ())
    }

    /// Change its size; the first min(old, new) bytes stay.
    pub fn resize(&self, seg: &mut Segment, size: u64) -> Result<(), Error> {
        let v = self.segment_op("resize", json!({ "segment": seg.id, "size": size }))?;
        seg.update(&v)
    }

    /// Make it read-only for everyone, its owner included.
    pub fn set_read_only(&self, seg: &mut Segment) -> Result<(), Error> {
        let v = self.segment_op("readonly", json!({ "segment": seg.id }))?;
        seg.update(&v)
    }

    /// Put it in the segment cache under `key` for `ttl` (it becomes read-only).
    pub fn publish_segment(&self, seg: &mut Segment, key: &str, ttl: Duration) -> Result<(), Error> {
        let v = self.segment_op("publish", json!({ "segment": seg.id, "key": key, "ttlMs": ttl.as_millis() as u64 }))?;
        seg.update(&v)
    }

    /// Free it (its owner only).
    pub fn free(&self, mut seg: Segment) -> Result<(), Error> {
        seg.close();
        self.segment_op("free", json!({ "segment": seg.id })).map(|_| ())
    }
}

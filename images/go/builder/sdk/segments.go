package logomesh

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SegmentsDir is where the controller mounts the shared-memory pool in a plugin whose
// manifest sets coordination.sharedMemory (LOGOMESH_SEGMENTS_DIR; empty: no pool).
func SegmentsDir() string { return os.Getenv("LOGOMESH_SEGMENTS_DIR") }

// Segment is a handle to one shared-memory segment (docs/shared-memory.md). Bytes and
// Writable map it with syscall.Mmap: reading and writing it copy nothing. The kernel decides
// what this plugin may open (the file's ACL). A Segment marshals to JSON as
// {"$segment": {...}}, so one can travel in a call's arguments or a result; pass its Ref (or
// Grant) to CallWith so the hub checks, and grants, the receiver's access.
type Segment struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Size     int64  `json:"size"`
	ReadOnly bool   `json:"readOnly"`
	Path     string `json:"path"`

	plugin   *Plugin
	mapped   []byte
	writable bool
}

// SegmentRef is a segment as a message carries it: its id, and the access its owner grants
// the receiver on the way ("read" or "write"; empty: none).
type SegmentRef struct {
	ID    string `json:"id"`
	Grant string `json:"grant,omitempty"`
}

// Ref is the segment, sent without a grant (the receiver must already have access).
func (s *Segment) Ref() SegmentRef { return SegmentRef{ID: s.ID} }

// Grant is the segment, sent with access ("read" or "write") for the receiver: its owner only.
func (s *Segment) Grant(access string) SegmentRef { return SegmentRef{ID: s.ID, Grant: access} }

type segmentJSON struct {
	Segment *segmentFields `json:"$segment"`
}

type segmentFields struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Size     int64  `json:"size"`
	ReadOnly bool   `json:"readOnly"`
	Path     string `json:"path"`
}

// MarshalJSON writes the handle as {"$segment": {...}}.
func (s *Segment) MarshalJSON() ([]byte, error) {
	return json.Marshal(segmentJSON{&segmentFields{s.ID, s.Owner, s.Size, s.ReadOnly, s.Path}})
}

// UnmarshalJSON reads a handle ({"$segment": {...}}, or its fields alone).
func (s *Segment) UnmarshalJSON(b []byte) error {
	var w segmentJSON
	if err := json.Unmarshal(b, &w); err == nil && w.Segment != nil {
		s.ID, s.Owner, s.Size, s.ReadOnly, s.Path = w.Segment.ID, w.Segment.Owner, w.Segment.Size, w.Segment.ReadOnly, w.Segment.Path
		return nil
	}
	var f segmentFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	s.ID, s.Owner, s.Size, s.ReadOnly, s.Path = f.ID, f.Owner, f.Size, f.ReadOnly, f.Path
	return nil
}

func (s *Segment) mapping(write bool) ([]byte, error) {
	if s.mapped != nil && (s.writable || !write) {
		return s.mapped, nil
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	dir := SegmentsDir()
	if dir == "" {
		return nil, Errorf(CodeSegment, "this plugin has no shared-memory pool (set coordination.sharedMemory: true)")
	}
	if s.Size < 1 {
		return nil, Errorf(CodeSegment, "segment %s has no size", s.ID)
	}
	flag, prot := os.O_RDONLY, syscall.PROT_READ
	if write {
		flag, prot = os.O_RDWR, syscall.PROT_READ|syscall.PROT_WRITE
	}
	f, err := os.OpenFile(filepath.Join(dir, s.Path), flag, 0)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, Errorf(CodePermissionDenied, "the kernel refused to open segment %s: this plugin was not given that access", s.ID)
		}
		return nil, Errorf(CodeSegment, "segment %s cannot be opened: %v", s.ID, err)
	}
	defer f.Close()
	// MAP_POPULATE: the pages are mapped in one go, not one fault at a time.
	b, err := syscall.Mmap(int(f.Fd()), 0, int(s.Size), prot, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, Errorf(CodeSegment, "segment %s cannot be mapped: %v", s.ID, err)
	}
	s.mapped, s.writable = b, write
	return b, nil
}

// Bytes is the whole segment, mapped read-only: the shared pages themselves, no copy. Valid
// until Close (or a resize, or SetReadOnly).
func (s *Segment) Bytes() ([]byte, error) { return s.mapping(false) }

// Writable is the whole segment mapped for writing (the kernel refuses unless this plugin may write it).
func (s *Segment) Writable() ([]byte, error) { return s.mapping(true) }

// Slice is bytes [from, to) of the read-only mapping.
func (s *Segment) Slice(from, to int64) ([]byte, error) {
	b, err := s.Bytes()
	if err != nil {
		return nil, err
	}
	if from < 0 || to > int64(len(b)) || from > to {
		return nil, Errorf(CodeInvalidArgument, "slice [%d, %d) is outside the segment's %d bytes", from, to, len(b))
	}
	return b[from:to], nil
}

// Read copies n bytes from offset off.
func (s *Segment) Read(off, n int64) ([]byte, error) {
	b, err := s.Slice(off, off+n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// Write copies data into the segment at offset off.
func (s *Segment) Write(data []byte, off int64) error {
	if off < 0 || off+int64(len(data)) > s.Size {
		return Errorf(CodeInvalidArgument, "writing %d bytes at %d passes the segment's %d bytes", len(data), off, s.Size)
	}
	b, err := s.Writable()
	if err != nil {
		return err
	}
	copy(b[off:], data)
	return nil
}

// Close unmaps the segment (it lives on until its owner frees it).
func (s *Segment) Close() error {
	if s.mapped == nil {
		return nil
	}
	err := syscall.Munmap(s.mapped)
	s.mapped = nil
	return err
}

// WriteStructured writes value in format ("json", "msgpack", "protobuf") with the data
// bridge's header (docs/data-bridge.md).
func (s *Segment) WriteStructured(value any, format string) error {
	b, err := FrameStructured(value, format)
	if err != nil {
		return err
	}
	if int64(len(b)) > s.Size {
		return Errorf(CodeInvalidArgument, "the data takes %d bytes in %s; the segment has %d", len(b), format, s.Size)
	}
	return s.Write(b, 0)
}

// WriteMessage writes value as the declared message typeName of types (format protobuf,
// docs/data-bridge.md), with the data bridge's header.
func (s *Segment) WriteMessage(types *ProtobufTypes, typeName string, value any) error {
	b, err := FrameMessage(types, typeName, value)
	if err != nil {
		return err
	}
	if int64(len(b)) > s.Size {
		return Errorf(CodeInvalidArgument, "the data takes %d bytes as %s; the segment has %d", len(b), typeName, s.Size)
	}
	return s.Write(b, 0)
}

// ReadMessage reads the declared message typeName the segment holds, as proto3 JSON.
func (s *Segment) ReadMessage(types *ProtobufTypes, typeName string) (any, error) {
	b, err := s.Bytes()
	if err != nil {
		return nil, err
	}
	return UnframeMessage(b, types, typeName)
}

// ReadStructured reads the value the segment holds; format, when not empty, must match its header.
func (s *Segment) ReadStructured(format string) (any, error) {
	b, err := s.Bytes()
	if err != nil {
		return nil, err
	}
	v, _, err := UnframeStructured(b, format)
	return v, err
}

// --- asking the pool ---------------------------------------------------------------------

type segmentMsg struct {
	Type    string   `json:"type"`
	ID      string   `json:"id"`
	Op      string   `json:"op"`
	Segment string   `json:"segment,omitempty"`
	Size    int64    `json:"size,omitempty"`
	Plugins []string `json:"plugins,omitempty"`
	Access  string   `json:"access,omitempty"`
	Key     string   `json:"key,omitempty"`
	TTLMs   int64    `json:"ttlMs,omitempty"`
}

func (p *Plugin) segmentOp(ctx context.Context, m segmentMsg) (json.RawMessage, error) {
	m.Type, m.ID = "segment", p.newID()
	reply := make(chan *inbound, 1)
	if !p.addPending(m.ID, func(in *inbound) { reply <- in }) {
		return nil, Errorf(CodeControllerUnavailable, "plugin %s is not connected to the hub", p.id)
	}
	frame, err := p.outbound(m, "segment "+m.Op)
	if err == nil {
		err = p.write(frame)
	}
	if err != nil {
		p.removePending(m.ID)
		return nil, err
	}
	timer := time.NewTimer(DefaultCallTimeout)
	defer timer.Stop()
	select {
	case in := <-reply:
		if in.Success {
			return in.Data, nil
		}
		if in.Error == nil {
			return nil, Errorf(CodeProtocol, "segment %s failed without an error", m.Op)
		}
		return nil, in.Error
	case <-timer.C:
		p.removePending(m.ID)
		return nil, Errorf(CodeTimeout, "no answer to segment %s", m.Op)
	case <-ctx.Done():
		p.removePending(m.ID)
		return nil, ctx.Err()
	}
}

func (p *Plugin) segmentAnswer(ctx context.Context, m segmentMsg, s *Segment) (*Segment, error) {
	raw, err := p.segmentOp(ctx, m)
	if err != nil {
		return nil, err
	}
	if s == nil {
		s = &Segment{}
	}
	_ = s.Close()
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, Errorf(CodeProtocol, "the pool's answer to %s is not a segment: %v", m.Op, err)
	}
	s.plugin = p
	return s, nil
}

// Allocate makes a new segment of size bytes (zeroed), owned by this plugin, which alone may
// open it until it shares it.
func (p *Plugin) Allocate(ctx context.Context, size int64) (*Segment, error) {
	return p.segmentAnswer(ctx, segmentMsg{Op: "allocate", Size: size}, nil)
}

// Lookup finds the segment published under key (read-only), with read access given to this plugin.
func (p *Plugin) Lookup(ctx context.Context, key string) (*Segment, error) {
	return p.segmentAnswer(ctx, segmentMsg{Op: "lookup", Key: key}, nil)
}

// Segment binds a handle received in a call (decoded into a Segment) to this plugin.
func (p *Plugin) Segment(s *Segment) *Segment { s.plugin = p; return s }

func (s *Segment) owner() (*Plugin, error) {
	if s.plugin == nil {
		return nil, Errorf(CodeSegment, "segment %s is not bound to a plugin (use plugin.Segment)", s.ID)
	}
	return s.plugin, nil
}

func (s *Segment) op(ctx context.Context, m segmentMsg) error {
	p, err := s.owner()
	if err != nil {
		return err
	}
	m.Segment = s.ID
	_, err = p.segmentAnswer(ctx, m, s)
	return err
}

// Resize changes its size; the first min(old, new) bytes stay.
func (s *Segment) Resize(ctx context.Context, size int64) error {
	return s.op(ctx, segmentMsg{Op: "resize", Size: size})
}

// SetReadOnly makes it read-only for everyone, its owner included.
func (s *Segment) SetReadOnly(ctx context.Context) error {
	return s.op(ctx, segmentMsg{Op: "readonly"})
}

// Share sets exactly which plugins (besides the owner) may open it, with access "read" or "write".
func (s *Segment) Share(ctx context.Context, plugins []string, access string) error {
	return s.op(ctx, segmentMsg{Op: "share", Plugins: plugins, Access: access})
}

// Publish puts it in the segment cache under key for ttl (it becomes read-only).
func (s *Segment) Publish(ctx context.Context, key string, ttl time.Duration) error {
	return s.op(ctx, segmentMsg{Op: "publish", Key: key, TTLMs: ttl.Milliseconds()})
}

// Free frees it (its owner only).
func (s *Segment) Free(ctx context.Context) error {
	p, err := s.owner()
	if err != nil {
		return err
	}
	_ = s.Close()
	_, err = p.segmentOp(ctx, segmentMsg{Op: "free", Segment: s.ID})
	return err
}

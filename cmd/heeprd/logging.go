package main

import (
	"context"
	"log/slog"
)

// quietInfo lowers a library's info lines to debug. protoactor logs routine events (actor system
// started, dead letters) at info; heeprd keeps info for its own lifecycle, so a healthy server
// under load writes no line per request. Warnings and errors pass unchanged.
type quietInfo struct{ slog.Handler }

// Enabled reports whether a record of the level, after lowering, would be written.
func (q quietInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return q.Handler.Enabled(ctx, lower(l))
}

// Handle writes the record at its lowered level.
func (q quietInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lower(r.Level)
	return q.Handler.Handle(ctx, r)
}

// WithAttrs keeps the lowering on derived handlers.
func (q quietInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietInfo{q.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the lowering on derived handlers.
func (q quietInfo) WithGroup(name string) slog.Handler {
	return quietInfo{q.Handler.WithGroup(name)}
}

func lower(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

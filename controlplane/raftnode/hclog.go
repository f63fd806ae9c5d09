package raftnode

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHCLog lets raft log through the manager's zap logger, so raft's
// messages carry the same fields and sinks as everything else. Raft's Info
// stays Info: elections and membership changes are what operators need.
type zapHCLog struct {
	z       *zap.Logger
	root    *zap.Logger
	name    string
	implied []interface{}
	level   hclog.Level
}

func newHCLog(z *zap.Logger) hclog.Logger {
	return &zapHCLog{z: z, root: z, level: hclog.Trace}
}

func fields(args []interface{}) []zap.Field {
	fs := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			fs = append(fs, zap.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		v := args[i+1]
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			// hclog.Fmt("%+v", x): format it as hclog would.
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		fs = append(fs, zap.Any(key, v))
	}
	return fs
}

func zapLevel(l hclog.Level) zapcore.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	default:
		return zapcore.InfoLevel
	}
}

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off || level < l.level {
		return
	}
	if ce := l.z.Check(zapLevel(level), msg); ce != nil {
		ce.Write(fields(args)...)
	}
}

func (l *zapHCLog) Trace(msg string, args ...interface{}) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHCLog) Debug(msg string, args ...interface{}) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHCLog) Info(msg string, args ...interface{})  { l.Log(hclog.Info, msg, args...) }
func (l *zapHCLog) Warn(msg string, args ...interface{})  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHCLog) Error(msg string, args ...interface{}) { l.Log(hclog.Error, msg, args...) }

func (l *zapHCLog) enabled(level hclog.Level) bool {
	return level >= l.level && l.z.Core().Enabled(zapLevel(level))
}

func (l *zapHCLog) IsTrace() bool { return l.enabled(hclog.Trace) }
func (l *zapHCLog) IsDebug() bool { return l.enabled(hclog.Debug) }
func (l *zapHCLog) IsInfo() bool  { return l.enabled(hclog.Info) }
func (l *zapHCLog) IsWarn() bool  { return l.enabled(hclog.Warn) }
func (l *zapHCLog) IsError() bool { return l.enabled(hclog.Error) }

func (l *zapHCLog) ImpliedArgs() []interface{} { return l.implied }

func (l *zapHCLog) With(args ...interface{}) hclog.Logger {
	c := *l
	c.z = l.z.With(fields(args)...)
	c.implied = append(append([]interface{}{}, l.implied...), args...)
	return &c
}

func (l *zapHCLog) Name() string { return l.name }

func (l *zapHCLog) Named(name string) hclog.Logger {
	c := *l
	c.z = l.z.Named(name)
	if l.name != "" {
		name = l.name + "." + name
	}
	c.name = name
	return &c
}

func (l *zapHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.z = l.root.Named(name).With(fields(l.implied)...)
	c.name = name
	return &c
}

func (l *zapHCLog) SetLevel(level hclog.Level) { l.level = level }
func (l *zapHCLog) GetLevel() hclog.Level      { return l.level }

func (l *zapHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHCLog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return writerFunc(func(p []byte) (int, error) {
		l.Log(level, string(bytes.TrimSpace(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

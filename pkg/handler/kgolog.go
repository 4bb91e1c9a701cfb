package handler

import (
	"github.com/go-logr/logr"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger passes franz-go's warnings and errors to logr. franz-go's
// messages are fixed strings with key/value pairs, like ours.
type kgoLogger struct{ log logr.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error(nil, msg, keyvals...)
	case kgo.LogLevelWarn:
		l.log.Info(msg, keyvals...)
	default:
		l.log.V(1).Info(msg, keyvals...)
	}
}

func kerrCode(code int16) error { return kerr.ErrorForCode(code) }

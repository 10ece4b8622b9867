package rtcpeer

import (
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion's logs to a slog.Logger: debug and info at debug,
// warnings and errors at info (pion logs expected conditions, such as
// statistics of a closed ICE agent, as errors).
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(m string)            { l.log.Debug(m) }
func (l pionLogger) Debugf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Info(m string)             { l.log.Debug(m) }
func (l pionLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Warn(m string)             { l.log.Info(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.log.Info(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(m string)            { l.log.Info(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.log.Info(fmt.Sprintf(f, a...)) }

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jrick/logrotate/rotator"
	"github.com/sirupsen/logrus"
)

// subsystems are holdd's log tags, as lnd tags its own.
var subsystems = []string{
	"HOLD", // daemon start-up and shutdown
	"ENGN", // hold engine decisions
	"INTC", // HtlcInterceptor stream
	"RLSE", // release intake
	"DLVR", // path delivery to senders
	"PLNK", // peer link to lnd
	"CMSG", // custom-message transport
	"BLKS", // block heights
	"RPCS", // holdd's own RPC server
}

// loggers hands out one logger per subsystem. Each has its own level and
// all write to the same rotating file and stdout.
type loggers struct {
	out    io.Writer
	levels map[string]logrus.Level
	def    logrus.Level
	close  func()
}

// sub returns the logger of a subsystem.
func (l *loggers) sub(name string) logrus.FieldLogger {
	lg := logrus.New()
	lg.SetOutput(l.out)
	lg.SetFormatter(&logrus.TextFormatter{
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02 15:04:05.000",
		DisableColors:   true,
	})
	level, ok := l.levels[name]
	if !ok {
		level = l.def
	}
	lg.SetLevel(level)
	return lg.WithField("sub", name)
}

// parseDebugLevel reads lnd's form: "info" or "info,ENGN=debug,INTC=trace".
func parseDebugLevel(s string) (logrus.Level, map[string]logrus.Level,
	error) {

	def := logrus.InfoLevel
	levels := make(map[string]logrus.Level)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, lvl, isSub := strings.Cut(part, "=")
		if !isSub {
			lvl = name
		}
		level, err := logrus.ParseLevel(lvl)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: debuglevel %q: %v",
				errConfig, part, err)
		}
		if !isSub {
			def = level
			continue
		}
		name = strings.ToUpper(name)
		known := false
		for _, s := range subsystems {
			known = known || s == name
		}
		if !known {
			return 0, nil, fmt.Errorf("%w: debuglevel: unknown "+
				"subsystem %q (known: %s)", errConfig, name,
				strings.Join(subsystems, " "))
		}
		levels[name] = level
	}
	return def, levels, nil
}

// setupLogging logs to stdout and to <holddir>/logs/<network>/holdd.log,
// which rotates at maxlogfilesize MB keeping maxlogfiles old files.
func setupLogging(cfg *config) (*loggers, error) {
	def, levels, err := parseDebugLevel(cfg.DebugLevel)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.HoldDir, "logs", cfg.Network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rot, err := rotator.New(filepath.Join(dir, "holdd.log"),
		int64(cfg.MaxLogFileSize)*1024, false, cfg.MaxLogFiles)
	if err != nil {
		return nil, err
	}
	return &loggers{
		out:    io.MultiWriter(os.Stdout, rot),
		levels: levels,
		def:    def,
		close:  func() { _ = rot.Close() },
	}, nil
}

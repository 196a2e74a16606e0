package daemon

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jrick/logrotate/rotator"
	"github.com/sirupsen/logrus"
)

// subsystem is a log tag, as lnd tags its own. A value exists only through
// newSubsystem, which adds the tag to the registry debuglevel is checked
// against, so every tag a logger carries is one debuglevel accepts (lnd's
// build.NewSubLogger and AddSubLogger keep one table the same way).
type subsystem struct {
	tag   string
	about string
}

// registry is every subsystem in the order declared below; it is filled
// while the package initialises and only read afterwards.
var registry []subsystem

// newSubsystem registers a tag. It panics on a malformed or repeated tag:
// both are programming errors found by the first test run.
func newSubsystem(tag, about string) subsystem {
	if len(tag) != 4 || strings.ToUpper(tag) != tag {
		panic(fmt.Sprintf("log subsystem %q: want four capitals", tag))
	}
	for _, s := range registry {
		if s.tag == tag {
			panic(fmt.Sprintf("log subsystem %q registered twice",
				tag))
		}
	}
	s := subsystem{tag: tag, about: about}
	registry = append(registry, s)
	return s
}

// The subsystems. A logger is obtained only with one of these (see
// loggers.sub), and docs/operator.md lists each (a test compares).
var (
	subHOLD = newSubsystem("HOLD", "daemon start-up and shutdown")
	subENGN = newSubsystem("ENGN", "hold engine decisions")
	subINTC = newSubsystem("INTC", "HtlcInterceptor stream")
	subRLSE = newSubsystem("RLSE", "release intake")
	subDLVR = newSubsystem("DLVR", "path delivery to senders")
	subPLNK = newSubsystem("PLNK", "peer link to lnd")
	subCMSG = newSubsystem("CMSG", "custom-message transport")
	subBLKS = newSubsystem("BLKS", "block heights")
	subRPCS = newSubsystem("RPCS", "holdd's own RPC server")
	subRCPT = newSubsystem("RCPT", "recipient: paths and replies")
	subMBOX = newSubsystem("MBOX", "mailbox for offline recipients")
	subMBXC = newSubsystem("MBXC", "recipient's registration with its "+
		"mailbox")
	subISRV = newSubsystem("ISRV", "static invoice server")
)

// subsystemTags lists the registered tags in declaration order.
func subsystemTags() []string {
	tags := make([]string, 0, len(registry))
	for _, s := range registry {
		tags = append(tags, s.tag)
	}
	return tags
}

// isSubsystem reports whether tag is registered.
func isSubsystem(tag string) bool {
	for _, s := range registry {
		if s.tag == tag {
			return true
		}
	}
	return false
}

// subsystemField is the one field naming a line's subsystem.
const subsystemField = "sub"

// loggers hands out one logger per subsystem. Each has its own level and
// all write to the same rotating file and stdout.
type loggers struct {
	out    io.Writer
	levels map[string]logrus.Level
	def    logrus.Level
	close  func()
}

// sub returns the logger of a subsystem.
func (l *loggers) sub(s subsystem) logrus.FieldLogger {
	if !isSubsystem(s.tag) {
		panic(fmt.Sprintf("log subsystem %q not registered", s.tag))
	}
	lg := logrus.New()
	lg.SetOutput(l.out)
	lg.SetFormatter(&logrus.TextFormatter{
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02 15:04:05.000",
		DisableColors:   true,
	})
	level, ok := l.levels[s.tag]
	if !ok {
		level = l.def
	}
	lg.SetLevel(level)
	return lg.WithField(subsystemField, s.tag)
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
		if !isSubsystem(name) {
			return 0, nil, fmt.Errorf("%w: debuglevel: unknown "+
				"subsystem %q (known: %s)", errConfig, name,
				strings.Join(subsystemTags(), " "))
		}
		levels[name] = level
	}
	return def, levels, nil
}

// setupLogging logs to stdout and to <holddir>/logs/<network>/holdd.log,
// which rotates at maxlogfilesize MB keeping maxlogfiles old files.
func setupLogging(cfg *Config) (*loggers, error) {
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

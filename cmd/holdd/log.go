package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
)

// setupLogging logs to stdout and to <holddir>/logs/<network>/holdd.log.
func setupLogging(cfg *config) (*logrus.Logger, func(), error) {
	level, err := logrus.ParseLevel(cfg.DebugLevel)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: debuglevel: %v", errConfig, err)
	}
	dir := filepath.Join(cfg.HoldDir, "logs", cfg.Network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "holdd.log"),
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	l := logrus.New()
	l.SetLevel(level)
	l.SetOutput(io.MultiWriter(os.Stdout, f))
	l.SetFormatter(&logrus.TextFormatter{
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02 15:04:05.000",
		DisableColors:   true,
	})
	return l, func() { _ = f.Close() }, nil
}

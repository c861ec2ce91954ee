// Command mkdeb is the build step behind `make build` and `make deb`: it
// prints the source tree's version, builds the vigil binary stamped with it,
// or builds the Debian package. Run from the repository's root:
//
//	go run ./packaging/mkdeb version
//	go run ./packaging/mkdeb build --out bin/vigil [--version V]
//	go run ./packaging/mkdeb deb --out bin [--version V]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-ha/vigil/internal/packaging"
)

const usage = "usage: mkdeb version | build --out FILE [--version V] | deb --out DIR [--version V]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	flags := flag.NewFlagSet("mkdeb "+args[0], flag.ContinueOnError)
	out := flags.String("out", "", "the binary (build) or the directory of the package (deb)")
	version := flags.String("version", "", "version to stamp (default: computed from git, see internal/packaging.Version)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		return errors.New(usage)
	}
	if *version == "" {
		v, err := packaging.Version(ctx, ".")
		if err != nil {
			return fmt.Errorf("compute the version (or pass --version): %w", err)
		}
		*version = v
	}
	switch args[0] {
	case "version":
		_, err := fmt.Println(*version)
		return err
	case "build":
		if *out == "" {
			return errors.New("build: --out FILE is required")
		}
		if err := packaging.BuildBinary(ctx, ".", *version, *out); err != nil {
			return err
		}
		log.Info("built", "binary", *out, "version", *version)
		return nil
	case "deb":
		if *out == "" {
			return errors.New("deb: --out DIR is required")
		}
		deb, err := packaging.BuildDeb(ctx, packaging.Options{SourceDir: ".", Version: *version, OutDir: *out})
		if err != nil {
			return err
		}
		log.Info("built", "package", deb, "version", *version)
		return nil
	}
	return errors.New(usage)
}

package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// dockerPingTimeout bounds the Docker probe: on machines without an engine the fallback
// to local binaries must start at once, not after a client's default retries.
const dockerPingTimeout = 3 * time.Second

var (
	dockerOnce sync.Once
	dockerErr  error
)

// dockerAvailable reports whether a Docker engine answers, asking once per process
// because testcontainers caches its host discovery anyway and the answer does not change
// within a test run.
func dockerAvailable(ctx context.Context) error {
	dockerOnce.Do(func() { dockerErr = probeDocker(ctx) })
	return dockerErr
}

func probeDocker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	done := make(chan error, 1)
	// The probe runs in its own goroutine so that a client that ignores ctx somewhere
	// (host discovery, TLS setup) cannot hold up the fallback.
	go func() {
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			done <- err
			return
		}
		defer cli.Close()
		_, err = cli.Ping(ctx, client.PingOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("docker ping: %w", ctx.Err())
	}
}

// startContainer runs ThrowawayImage with the same durability trade-offs as the local
// throwaway cluster: data on tmpfs and no fsync, since it is discarded after the run.
func startContainer(ctx context.Context) (*Server, error) {
	ctr, err := tcpostgres.Run(ctx, ThrowawayImage,
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.WithDatabase("postgres"),
		testcontainers.WithTmpfs(map[string]string{"/var/lib/postgresql/data": "rw"}),
		testcontainers.WithCmdArgs(
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", fmt.Sprintf("max_connections=%d", throwawayMaxConnections),
		),
		tcpostgres.BasicWaitStrategies(),
	)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("start %s: %w", ThrowawayImage, err)
	}
	connURL, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("container connection string: %w", err)
	}
	return &Server{
		URL:  connURL,
		Kind: KindTestcontainers,
		stop: func(ctx context.Context) error {
			return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
		},
	}, nil
}

// composeURL is the connection URL of the `postgres` service in docker-compose.yml.
const composeURL = "postgres://acp:acp@127.0.0.1:5432/acp?sslmode=disable"

// composeUp starts the compose `postgres` service and waits for its healthcheck, so that
// the URL it returns is usable at once.
func composeUp(ctx context.Context) (*Server, error) {
	root, err := composeRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "docker", "compose", "up", "-d", "--wait", "postgres")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("docker compose up -d --wait postgres (in %s): %w: %s", root, err, strings.TrimSpace(out.String()))
	}
	return &Server{URL: composeURL, Kind: KindDocker}, nil
}

// composeRoot finds the directory holding docker-compose.yml by walking up from the
// working directory, so `go run ./cmd/devdb` works from any directory of the checkout.
func composeRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "docker-compose.yml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no docker-compose.yml in the working directory or its parents")
		}
		dir = parent
	}
}

package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
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

// startContainer runs throwawayImage() with the same durability trade-offs as the local
// throwaway cluster: data on tmpfs and no fsync, since it is discarded after the run. Its
// port is published on 127.0.0.1 only, and the URL names that address: a test database
// has a known password and must not be reachable from the network, and "localhost" may
// resolve to ::1 first, where nothing is published.
func startContainer(ctx context.Context) (*Server, error) {
	image := throwawayImage()
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.WithDatabase("postgres"),
		testcontainers.WithTmpfs(map[string]string{"/var/lib/postgresql/data": "rw"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				containerPort: {{HostIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), HostPort: "0"}},
			}
		}),
		testcontainers.WithCmdArgs(
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", fmt.Sprintf("max_connections=%d", throwawayMaxConnections),
		),
		// The official image logs "ready" twice: once for the temporary server that
		// initialises the data directory, once for the real one. The port is then checked
		// by waitReady on 127.0.0.1 below, not by testcontainers' port wait, which dials
		// the host it infers for the engine: inside a container (a /.dockerenv, as on CI
		// machines here) that is the bridge gateway, where nothing is published.
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").
			WithOccurrence(2).WithStartupTimeout(containerStartTimeout)),
	)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("start %s: %w", image, err)
	}
	port, err := ctr.MappedPort(ctx, containerPort.String())
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("container port: %w", err)
	}
	connURL := fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?sslmode=disable", port.Num())
	if err := waitReady(ctx, connURL, nil, containerStartTimeout); err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("%s on 127.0.0.1:%d: %w", image, port.Num(), err)
	}
	return &Server{
		URL:  connURL,
		Kind: KindTestcontainers,
		stop: func(ctx context.Context) error {
			return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
		},
	}, nil
}

// containerStartTimeout bounds each wait for a started container; the image is already
// there (pulled or built) by then, so this is the server's own start.
const containerStartTimeout = time.Minute

// containerPort is PostgreSQL's port inside the container.
var containerPort = network.MustParsePort("5432/tcp")

// composeURL is the connection URL of the `postgres` service in docker-compose.yml, on
// the host port that file publishes it on (ACP_POSTGRES_PORT, default 5432).
func composeURL() string {
	port := strings.TrimSpace(os.Getenv("ACP_POSTGRES_PORT"))
	if port == "" {
		port = "5432"
	}
	return "postgres://acp:acp@127.0.0.1:" + port + "/acp?sslmode=disable"
}

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
	return &Server{URL: composeURL(), Kind: KindDocker}, nil
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

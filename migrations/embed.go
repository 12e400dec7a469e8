// Package migrations holds the goose SQL migrations, embedded so the binary carries its schema.
package migrations

import "embed"

// FS holds every *.sql migration in this directory.
//
//go:embed *.sql
var FS embed.FS

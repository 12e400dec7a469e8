// Package spec embeds the vendored ACP specification files of this folder (README.md
// says where they come from), for the code that serves parts of them (the MCP tool
// schemas of internal/httpapi) and for the tests (internal/acpspec). It holds no logic:
// a refresh from upstream replaces the version folders and leaves this file alone.
package spec

import (
	"embed"
	"io/fs"
)

// The upstream files, unchanged; SOURCE names the commit they come from.
//
//go:embed LICENSE NOTICE SOURCE 2025-09-29 2026-04-17
var files embed.FS

// FS returns the vendored spec, rooted at the folder holding the version directories
// (e.g. "2025-09-29/json-schema/schema.agentic_checkout.json").
func FS() fs.FS { return files }

// Package docs_test holds the repository's documents to what they point at: every
// relative link of a Markdown file reaches a file, and a heading where it names one,
// and every citation of a document's section in code, queries, migrations and
// documents ("docs/PERFORMANCE.md, "Round trips"") names a section that document has.
// Sections move between documents (the rounds of issue 12 left PERFORMANCE.md for
// performance-history.md); these tests make a move carry its citations along.
package docs_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the repository's root, the parent of this directory.
const repoRoot = ".."

// trackedFiles lists the repository's files that match the patterns (shell patterns
// over a file's base name): those under git, so that build output and scratch files do
// not count, or, in a copy without git (a source archive), every file outside hidden
// directories and bin/.
func trackedFiles(t *testing.T, patterns ...string) []string {
	t.Helper()
	var files []string
	if out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-z").Output(); err == nil {
		for _, file := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			// A tracked file deleted in the working tree is not there to read.
			if _, err := os.Stat(filepath.Join(repoRoot, file)); err == nil && matchesAny(file, patterns) {
				files = append(files, file)
			}
		}
	} else {
		t.Logf("git ls-files: %v; walking the directory instead", err)
		err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repoRoot, path)
			if d.IsDir() && rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "bin") {
				return filepath.SkipDir
			}
			if !d.IsDir() && matchesAny(rel, patterns) {
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no file matches %v", patterns)
	}
	return files
}

// matchesAny reports whether the file's base name matches one of the patterns.
func matchesAny(file string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, filepath.Base(file)); ok {
			return true
		}
	}
	return false
}

// document is a Markdown file's headings, as GitHub renders their anchors, and the
// text of its headings and bold leads, which citations name.
type document struct {
	anchors  map[string]bool
	sections []string
}

var (
	headingLine = regexp.MustCompile(`^(#{1,6})\s+(.+?)\s*#*\s*$`)
	boldLead    = regexp.MustCompile(`(?m)^\s*(?:- )?\*\*([^*]+)\*\*`)
	markdownRef = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	fence       = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")
	inlineCode  = regexp.MustCompile("`[^`\n]*`")
)

// documents reads each Markdown file once, by path.
type documents map[string]document

// read returns the document at path, reading it the first time.
func (ds documents) read(t *testing.T, path string) document {
	t.Helper()
	d, ok := ds[path]
	if !ok {
		d = readDocument(t, path)
		ds[path] = d
	}
	return d
}

// readDocument reads a Markdown file's anchors and sections, skipping fenced code.
func readDocument(t *testing.T, path string) document {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	text := fence.ReplaceAllString(string(raw), "")
	doc := document{anchors: map[string]bool{}}
	seen := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		m := headingLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		heading := m[2]
		doc.sections = append(doc.sections, heading)
		slug := anchorOf(heading)
		if n := seen[slug]; n > 0 {
			doc.anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			doc.anchors[slug] = true
		}
		seen[slug]++
	}
	for _, m := range boldLead.FindAllStringSubmatch(text, -1) {
		doc.sections = append(doc.sections, m[1])
	}
	return doc
}

// anchorOf is GitHub's anchor for a heading: lower case, letters, digits, spaces,
// hyphens and underscores kept, every other character dropped, spaces made hyphens.
func anchorOf(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// TestMarkdownLinksReachTheirTargets follows every relative link of every tracked
// Markdown file: the file must exist, and an anchor must be one of its headings.
func TestMarkdownLinksReachTheirTargets(t *testing.T) {
	docs := documents{}
	links := 0
	for _, file := range trackedFiles(t, "*.md") {
		path := filepath.Join(repoRoot, file)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := inlineCode.ReplaceAllString(fence.ReplaceAllString(string(raw), ""), "")
		for _, m := range markdownRef.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			name, anchor, _ := strings.Cut(target, "#")
			dest := path
			if name != "" {
				dest = filepath.Join(filepath.Dir(path), name)
			}
			if _, err := os.Stat(dest); err != nil {
				t.Errorf("%s: link %q: no such file", file, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(dest, ".md") && !docs.read(t, dest).anchors[anchor] {
				t.Errorf("%s: link %q: %s has no heading with that anchor", file, target, filepath.Base(dest))
			}
		}
	}
	if links == 0 {
		t.Fatal("found no relative links: the pattern no longer matches the documents")
	}
}

// citation is a document's name followed by a quoted section: `docs/X.md, "Name"`,
// `docs/X.md ("Name")` or `docs/X.md: "Name"`, across a comment's line breaks.
var citation = regexp.MustCompile(`(?:^|[^./\w])docs/([\w.-]+\.md)(?:,\s*|\s*\(|:\s*)"([^"]+)"`)

// commentBreak joins a comment or a paragraph wrapped over lines into one line.
var commentBreak = regexp.MustCompile(`\s*\n\s*(?://|--|#)?\s*`)

// TestSectionCitationsNameASection finds every citation of a section of a document
// under docs/ in the code, queries, migrations, scripts and documents, and wants a
// heading (or a paragraph's bold lead) of that document to contain the name it quotes.
func TestSectionCitationsNameASection(t *testing.T) {
	docs := documents{}
	cited := 0
	for _, file := range trackedFiles(t, "*.go", "*.sql", "*.md", "*.sh", "Makefile", "*.pgbench") {
		raw, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte("docs/")) {
			continue
		}
		text := commentBreak.ReplaceAllString(string(raw), " ")
		for _, m := range citation.FindAllStringSubmatch(text, -1) {
			name, section := m[1], m[2]
			path := filepath.Join(repoRoot, "docs", name)
			if _, err := os.Stat(path); err != nil {
				// A document of the specification or of ../shared, not ours.
				continue
			}
			cited++
			if !containsSection(docs.read(t, path).sections, section) {
				t.Errorf("%s cites docs/%s, %q: no heading or bold lead of it says that", file, name, section)
			}
		}
	}
	if cited == 0 {
		t.Fatal("found no citations: the pattern no longer matches")
	}
}

// containsSection reports whether one of the sections contains the quoted name, letter
// case and Markdown's code quotes aside.
func containsSection(sections []string, name string) bool {
	want := strings.ToLower(strings.ReplaceAll(name, "`", ""))
	for _, s := range sections {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(s, "`", "")), want) {
			return true
		}
	}
	return false
}

// TestAnchorOfFollowsGitHub pins the anchor rule the link test relies on.
func TestAnchorOfFollowsGitHub(t *testing.T) {
	for heading, want := range map[string]string{
		"Round trips": "round-trips",
		"Seventh round (2026-12-03): what grew with use":     "seventh-round-2026-12-03-what-grew-with-use",
		"The pgbench script: `cmd/acpload/complete.pgbench`": "the-pgbench-script-cmdacploadcompletepgbench",
		"6. The views' SQL": "6-the-views-sql",
		"Before issue 12: the bench's first measurement (`8b92c9d`)":           "before-issue-12-the-benchs-first-measurement-8b92c9d",
		"Method: levels, baseline, durability, flash sale, slow PSP":           "method-levels-baseline-durability-flash-sale-slow-psp",
		"Sixth round (2026-12-03): the floor, and where PostgreSQL's CPU goes": "sixth-round-2026-12-03-the-floor-and-where-postgresqls-cpu-goes",
	} {
		if got := anchorOf(heading); got != want {
			t.Errorf("anchorOf(%q) = %q, want %q", heading, got, want)
		}
	}
}

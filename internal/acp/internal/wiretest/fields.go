package wiretest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// fieldPackages are the packages whose constants of type checkout.FieldName are the
// domain's field names: checkout's own and the delegation's (payment).
var fieldPackages = []string{"internal/checkout", "internal/payment"}

// FieldNames returns every field name the domain declares: the values of all the
// checkout.FieldName constants of the non-test files of fieldPackages, read from their
// source, so that a version's table cannot pass its test by a list that forgot the
// newest name. A name declared twice (checkout.FieldCurrency and payment.FieldCurrency
// are one name) is returned once; the list is sorted.
func FieldNames(t *testing.T) []checkout.FieldName {
	t.Helper()
	root := moduleRoot(t)
	seen := map[checkout.FieldName]bool{}
	for _, pkg := range fieldPackages {
		n := 0
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatalf("parse %s: %v", name, err)
			}
			for _, v := range fieldNameConsts(t, f) {
				seen[v] = true
				n++
			}
		}
		if n == 0 {
			t.Fatalf("no FieldName constant found in %s: has the type moved?", pkg)
		}
	}
	out := make([]checkout.FieldName, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// fieldNameConsts returns the values of f's constants of type FieldName (in package
// checkout) or checkout.FieldName (elsewhere). A constant that repeats a FieldName
// implicitly (no type, no value) or whose value is not a string literal would hide its
// value from this reading, so those fail the test.
func fieldNameConsts(t *testing.T, f *ast.File) []checkout.FieldName {
	t.Helper()
	var out []checkout.FieldName
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		prevFieldName := false
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Type == nil && len(vs.Values) == 0 && prevFieldName {
				t.Fatalf("%s: constants %v repeat a FieldName implicitly", f.Name.Name, vs.Names)
			}
			prevFieldName = isFieldNameType(f.Name.Name, vs.Type)
			if !prevFieldName {
				continue
			}
			if len(vs.Values) != len(vs.Names) {
				t.Fatalf("%s: FieldName constants %v have no literal value of their own", f.Name.Name, vs.Names)
			}
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: FieldName constant %s is not a string literal", f.Name.Name, vs.Names[i])
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %s: %v", f.Name.Name, vs.Names[i], err)
				}
				out = append(out, checkout.FieldName(s))
			}
		}
	}
	return out
}

func isFieldNameType(pkg string, typ ast.Expr) bool {
	switch x := typ.(type) {
	case *ast.Ident:
		return pkg == "checkout" && x.Name == "FieldName"
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "checkout" && x.Sel.Name == "FieldName"
	}
	return false
}

// moduleRoot is the folder of go.mod above the test's working directory (its package's
// folder).
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

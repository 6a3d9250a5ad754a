package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStopCancelsAndWaits(t *testing.T) {
	g := New("test", zap.NewNop())
	finished := make(chan string, 3)
	for _, n := range []string{"a", "b", "c"} {
		if err := g.Go(n, func(ctx context.Context) error {
			<-ctx.Done()
			finished <- n
			return ctx.Err()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := g.Running(); len(got) != 3 {
		t.Fatalf("running %v", got)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if len(finished) != 3 || len(g.Running()) != 0 {
		t.Fatalf("finished %d, running %v", len(finished), g.Running())
	}
	if err := g.Go("late", func(context.Context) error { return nil }); !errors.Is(err, ErrStopped) {
		t.Fatalf("Go after Stop: %v", err)
	}
}

// A goroutine that starts a child after Stop began gets ErrStopped; returning it is the
// stop, not a failure for Stop to report (a processor stopped during its start).
func TestChildRefusedAtStopIsNoFailure(t *testing.T) {
	g := New("test", zap.NewNop())
	started, stopping := make(chan struct{}), make(chan struct{})
	if err := g.Go("parent", func(ctx context.Context) error {
		close(started)
		<-stopping
		<-ctx.Done()
		if err := g.Go("child", func(context.Context) error { return nil }); err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		return errors.New("child started after Stop")
	}); err != nil {
		t.Fatal(err)
	}
	<-started
	close(stopping)
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func TestStopTimeoutNamesStragglers(t *testing.T) {
	g := New("test", zap.NewNop())
	release := make(chan struct{})
	_ = g.Go("well-behaved", func(ctx context.Context) error { <-ctx.Done(); return nil })
	_ = g.Go("dockermon: read nginx", func(context.Context) error { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := g.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "dockermon: read nginx") || strings.Contains(err.Error(), "well-behaved") {
		t.Fatalf("want an error naming only the straggler, got %v", err)
	}
	close(release)
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestErrorsAndPanicsAreReported(t *testing.T) {
	g := New("test", zap.NewNop())
	_ = g.Go("fails", func(context.Context) error { return errors.New("boom") })
	_ = g.Go("panics", func(context.Context) error { panic("bad input") })
	_ = g.Go("cancelled", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	err := g.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fails: boom") || !strings.Contains(err.Error(), "panics: panic: bad input") ||
		strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("got %v", err)
	}
}

// TestNoBareGoStatements walks the repository: the only `go` statement in logcap is the one
// in this package. Every other goroutine starts through Group.Go and so has an owner. The
// calls that start a goroutine without saying `go` count too: context.AfterFunc (its
// callback runs in a goroutine of its own) and a one-argument Go method (sync.WaitGroup.Go,
// errgroup.Group.Go). Exceptions, each with its reason on the line above the call in a
// comment starting `goroutine:ok`: a callback that returns at once (moving a deadline) has
// nothing to own. Tests may use WaitGroup.Go: they wait for it before they return, and a
// test below modules cannot import this package.
// third_party holds upstream code carried with a patch (its own module, not logcap's code).
func TestNoBareGoStatements(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := filepath.Abs(".")
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bin" || n == "data" || n == "third_party") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == self {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		checked++
		for _, bad := range goroutineStarts(fset, f, strings.HasSuffix(path, "_test.go")) {
			t.Errorf("%s: start it with lifecycle.Group.Go so it has an owner", bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: is the walk rooted right (%s)?", checked, root)
	}
}

// goroutineStarts lists, by position, what starts a goroutine in f outside Group.Go.
func goroutineStarts(fset *token.FileSet, f *ast.File, test bool) []string {
	ok := map[int]bool{} // lines excused by a goroutine:ok comment on the line above
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(c.Text, "//")), "goroutine:ok") {
				ok[fset.Position(c.End()).Line+1] = true
			}
		}
	}
	var out []string
	report := func(n ast.Node, what string) {
		if pos := fset.Position(n.Pos()); !ok[pos.Line] {
			out = append(out, fmt.Sprintf("%s: %s", pos, what))
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n, "bare go statement")
		case *ast.CallExpr:
			sel, isSel := n.Fun.(*ast.SelectorExpr)
			if !isSel {
				return true
			}
			if pkg, isIdent := sel.X.(*ast.Ident); isIdent && pkg.Name == "context" && sel.Sel.Name == "AfterFunc" {
				report(n, "context.AfterFunc runs its callback in a goroutine")
			}
			if sel.Sel.Name == "Go" && len(n.Args) == 1 && !test {
				report(n, "a Go(fn) method (WaitGroup.Go, errgroup) starts a goroutine")
			}
		}
		return true
	})
	return out
}

// TestGoroutineStarts: the walk catches every way of starting a goroutine it claims to.
func TestGoroutineStarts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		test      bool
		want      int
	}{
		{"go statement", "go f()", false, 1},
		{"go statement in a test", "go f()", true, 1},
		{"context.AfterFunc", "context.AfterFunc(ctx, f)", false, 1},
		{"context.AfterFunc excused", "// goroutine:ok: sets a deadline\n\tcontext.AfterFunc(ctx, f)", false, 0},
		{"WaitGroup.Go", "wg.Go(f)", false, 1},
		{"WaitGroup.Go in a test", "wg.Go(f)", true, 0},
		{"Group.Go", `g.Go("name", f)`, false, 0},
		{"time.AfterFunc", "time.AfterFunc(d, cancel)", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "x.go", "package x\nfunc _() {\n\t"+tc.src+"\n}\n", parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if got := goroutineStarts(fset, f, tc.test); len(got) != tc.want {
				t.Errorf("%q: got %v, want %d", tc.src, got, tc.want)
			}
		})
	}
}

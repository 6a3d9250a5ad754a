package lifecycle

import (
	"context"
	"errors"
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
// in this package. Every other goroutine starts through Group.Go and so has an owner.
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
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: bare go statement: start it with lifecycle.Group.Go so it has an owner", fset.Position(g.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: is the walk rooted right (%s)?", checked, root)
	}
}

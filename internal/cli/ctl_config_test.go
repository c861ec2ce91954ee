package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/vigil-ha/vigil/internal/control"
)

// TestEditInEditorReadsBackTheEditedYAML: edit-config without flags opens
// $EDITOR on the settings' YAML and takes what the editor saved.
func TestEditInEditorReadsBackTheEditedYAML(t *testing.T) {
	t.Setenv("EDITOR", "sed -i s/8MB/16MB/")
	d := control.Document{PostgreSQL: control.DocumentPostgreSQL{Parameters: map[string]string{"work_mem": "8MB"}}}
	if err := editInEditor(context.Background())(&d); err != nil {
		t.Fatal(err)
	}
	if got := d.PostgreSQL.Parameters["work_mem"]; got != "16MB" {
		t.Fatalf("work_mem = %q after the editor, want 16MB", got)
	}
	t.Setenv("EDITOR", "sed -i s/16MB/[/")
	if err := editInEditor(context.Background())(&d); !errors.Is(err, control.ErrRefused) {
		t.Fatalf("broken YAML from the editor: err = %v, want it refused", err)
	}
}

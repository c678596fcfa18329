package config

import (
	"slices"
	"strings"
	"testing"
)

func TestMountKeys(t *testing.T) {
	c, err := Parse([]byte("templates:\n  - prefix: team\n    mount_from: [team/base, tools/base-image]\n"), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MountShared() {
		t.Error("mount_shared_layers unset: MountShared() = false, want true")
	}
	if got := c.Templates[0].MountFrom; !slices.Equal(got, []string{"team/base", "tools/base-image"}) {
		t.Errorf("mount_from = %q", got)
	}
	c, err = Parse([]byte("mount_shared_layers: false\n"), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MountShared() {
		t.Error("mount_shared_layers: false: MountShared() = true")
	}
	_, err = Parse([]byte("templates:\n  - prefix: team\n    mount_from: [Team/Base]\n"), "c.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "templates[0].mount_from[0]") {
		t.Errorf("invalid mount_from name: err = %v, want one naming templates[0].mount_from[0]", err)
	}
}

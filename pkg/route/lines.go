package route

import (
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds how much of the config file readLines reads;
// config files are small, and config.Load has already read this one.
const maxConfigBytes = 1 << 20

// lines locates the top-level keys of a YAML config file and the items of
// its top-level lists, to cite them; the zero value knows no lines.
type lines struct {
	root *yaml.Node // the top-level mapping; nil when unknown
}

// readLines reads the YAML file at path for lines.of; a file that cannot
// be read or parsed gives lines that know nothing (config.Load has
// reported its problems already).
func readLines(path string) lines {
	if path == "" {
		return lines{}
	}
	f, err := os.Open(path)
	if err != nil {
		return lines{}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil || len(data) > maxConfigBytes {
		return lines{}
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return lines{}
	}
	return lines{root: doc.Content[0]}
}

// of returns the 1-based line of the top-level key, or of its index'th
// list item when index >= 0; 0 when unknown.
func (l lines) of(key string, index int) int {
	if l.root == nil {
		return 0
	}
	for i := 0; i+1 < len(l.root.Content); i += 2 {
		if l.root.Content[i].Value != key {
			continue
		}
		if index < 0 {
			return l.root.Content[i].Line
		}
		v := l.root.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.SequenceNode && index < len(v.Content) {
			return v.Content[index].Line
		}
		return l.root.Content[i].Line
	}
	return 0
}

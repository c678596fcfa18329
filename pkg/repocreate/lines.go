package repocreate

import (
	"os"

	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds how much of the config file yamlLine reads; config
// files are small, and config.Load has already read this one.
const maxConfigBytes = 1 << 20

// yamlLine returns the 1-based line of the top-level key in the YAML file at
// path, or of its index'th list item when index >= 0; 0 when unknown (no
// file, no such key). It only locates: the file was validated by
// config.Load.
func yamlLine(path, key string, index int) int {
	if path == "" {
		return 0
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) > maxConfigBytes {
		return 0
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != key {
			continue
		}
		if index < 0 {
			return root.Content[i].Line
		}
		v := root.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.SequenceNode && index < len(v.Content) {
			return v.Content[index].Line
		}
		return root.Content[i].Line
	}
	return 0
}

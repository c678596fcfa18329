// Command sbom writes a CycloneDX 1.5 JSON SBOM for a release archive
// (.tar.gz or .zip) from the Go build information embedded in each binary it
// holds: the main module, every dependency module with its version and go.sum
// hash, and the toolchain. It needs no network and no external cataloger, so
// `make release-snapshot` runs offline; goreleaser calls it once per archive
// (see sboms: in .goreleaser.yaml).
//
//	sbom -version 1.0.0 -o dist/ecrgate_1.0.0_linux_amd64.tar.gz.cdx.json dist/ecrgate_1.0.0_linux_amd64.tar.gz
//
// The timestamp is SOURCE_DATE_EPOCH when set, so the same commit gives the
// same document.
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxBinary caps how much of one archive member is read into memory.
const maxBinary = 512 << 20

type binary struct {
	name string
	info *debug.BuildInfo
}

func main() {
	out := flag.String("o", "", "write the SBOM to this file (default: standard output)")
	version := flag.String("version", "", "the release version, for binaries whose build information says (devel)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sbom [-version V] [-o FILE] ARCHIVE")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *version); err != nil {
		fmt.Fprintln(os.Stderr, "sbom:", err)
		os.Exit(1)
	}
}

func run(archive, out, version string) error {
	bins, err := readArchive(archive)
	if err != nil {
		return err
	}
	if len(bins) == 0 {
		return fmt.Errorf("%s holds no Go binary", archive)
	}
	ts := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		ts = time.Unix(sec, 0).UTC()
	}
	doc, err := json.MarshalIndent(bom(path.Base(archive), version, ts, bins), "", "  ")
	if err != nil {
		return err
	}
	doc = append(doc, '\n')
	if out == "" {
		_, err = os.Stdout.Write(doc)
		return err
	}
	return os.WriteFile(out, doc, 0o644)
}

// readArchive returns the build information of every Go binary in the archive.
func readArchive(name string) ([]binary, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var bins []binary
	add := func(member string, r io.Reader) error {
		data, err := io.ReadAll(io.LimitReader(r, maxBinary+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", member, err)
		}
		if len(data) > maxBinary {
			return fmt.Errorf("%s is larger than %d bytes", member, maxBinary)
		}
		info, err := buildinfo.Read(bytes.NewReader(data))
		if err != nil {
			return nil // not a Go binary: README, LICENSE, units
		}
		bins = append(bins, binary{name: path.Base(member), info: info})
		return nil
	}
	switch {
	case strings.HasSuffix(name, ".zip"):
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		zr, err := zip.NewReader(f, st.Size())
		if err != nil {
			return nil, err
		}
		for _, zf := range zr.File {
			if !zf.Mode().IsRegular() {
				continue
			}
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			err = add(zf.Name, rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
		}
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			if err := add(h.Name, tr); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%s: want a .tar.gz or .zip archive", name)
	}
	sort.Slice(bins, func(i, j int) bool { return bins[i].name < bins[j].name })
	return bins, nil
}

// CycloneDX 1.5, the fields we fill.
type cdxBOM struct {
	BOMFormat    string          `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	Version      int             `json:"version"`
	Metadata     cdxMetadata     `json:"metadata"`
	Components   []cdxComponent  `json:"components"`
	Dependencies []cdxDependency `json:"dependencies"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	BOMRef     string        `json:"bom-ref,omitempty"`
	Type       string        `json:"type"`
	Name       string        `json:"name"`
	Version    string        `json:"version,omitempty"`
	PURL       string        `json:"purl,omitempty"`
	Hashes     []cdxHash     `json:"hashes,omitempty"`
	Properties []cdxProperty `json:"properties,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

func purl(mod, version string) string {
	p := "pkg:golang/" + mod
	if version != "" {
		p += "@" + version
	}
	return p
}

// h1Hash turns a go.sum "h1:<base64 sha256>" into a CycloneDX SHA-256 hash.
func h1Hash(sum string) []cdxHash {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil
	}
	return []cdxHash{{Alg: "SHA-256", Content: hex.EncodeToString(raw)}}
}

func bom(archive, version string, ts time.Time, bins []binary) cdxBOM {
	b := cdxBOM{
		BOMFormat:   "CycloneDX",
		SpecVersion: "1.5",
		Version:     1,
		Metadata: cdxMetadata{
			Timestamp: ts.Format(time.RFC3339),
			Tools: cdxTools{Components: []cdxComponent{{
				Type: "application", Name: "ecrgate tools/release/sbom",
			}}},
			Component: cdxComponent{BOMRef: "archive:" + archive, Type: "file", Name: archive, Version: version},
		},
	}
	seen := map[string]bool{}
	var top []string
	for _, bin := range bins {
		ref := "binary:" + bin.name
		top = append(top, ref)
		v := bin.info.Main.Version
		if (v == "" || v == "(devel)") && version != "" {
			v = version
		}
		comp := cdxComponent{
			BOMRef: ref, Type: "application", Name: bin.name,
			Version: v, PURL: purl(bin.info.Main.Path, v),
			Properties: []cdxProperty{
				{Name: "go:toolchain", Value: bin.info.GoVersion},
				{Name: "go:package", Value: bin.info.Path},
				{Name: "go:module", Value: bin.info.Main.Path},
			},
		}
		for _, s := range bin.info.Settings {
			switch s.Key {
			case "GOOS", "GOARCH", "CGO_ENABLED", "-trimpath", "vcs.revision", "vcs.time":
				comp.Properties = append(comp.Properties, cdxProperty{Name: "go:build:" + s.Key, Value: s.Value})
			}
		}
		b.Components = append(b.Components, comp)
		var deps []string
		for _, d := range bin.info.Deps {
			m := d
			if d.Replace != nil {
				m = d.Replace
			}
			dref := purl(m.Path, m.Version)
			deps = append(deps, dref)
			if seen[dref] {
				continue
			}
			seen[dref] = true
			b.Components = append(b.Components, cdxComponent{
				BOMRef: dref, Type: "library", Name: m.Path, Version: m.Version,
				PURL: dref, Hashes: h1Hash(m.Sum),
			})
		}
		sort.Strings(deps)
		b.Dependencies = append(b.Dependencies, cdxDependency{Ref: ref, DependsOn: deps})
	}
	b.Dependencies = append([]cdxDependency{{Ref: b.Metadata.Component.BOMRef, DependsOn: top}}, b.Dependencies...)
	for ref := range seen {
		b.Dependencies = append(b.Dependencies, cdxDependency{Ref: ref, DependsOn: []string{}})
	}
	sort.SliceStable(b.Dependencies[1+len(bins):], func(i, j int) bool {
		rest := b.Dependencies[1+len(bins):]
		return rest[i].Ref < rest[j].Ref
	})
	return b
}

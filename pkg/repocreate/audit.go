package repocreate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// auditRecord is one line of the audit file.
type auditRecord struct {
	Time       time.Time `json:"time"`
	Registry   string    `json:"registry"`
	Repository string    `json:"repository"`
	// Template is the configuration template's prefix, "builtin" for the
	// built-in default, or "native:<prefix>" when ECR's own CREATE_ON_PUSH
	// template creates the repository.
	Template string `json:"template"`
	Identity string `json:"identity"`
	// Client is the address of the client whose request led to the
	// record (Caller.Addr); Token the fingerprint of its credentials
	// (Caller.Token, never the token), when they went upstream.
	Client string `json:"client,omitempty"`
	Token  string `json:"token,omitempty"`
	// DryRun is true when ecrgate only decided and created nothing.
	DryRun bool `json:"dry_run"`
	// Warnings lists settings that could not be applied after creation.
	Warnings []string `json:"warnings,omitempty"`
	// Mount, on a record of its own, is a layer ecrgate mounted into the
	// repository instead of letting the pusher upload it; Template is
	// empty then.
	Mount *auditMount `json:"mount,omitempty"`
}

// auditMount is a layer mounted (or copied) from another repository.
type auditMount struct {
	Digest string `json:"digest"`
	From   string `json:"from"`
	Size   int64  `json:"size"`
	How    string `json:"how"` // "mount" or "copy"
}

// auditLog appends JSON lines to a file. Each record is one write on a file
// opened with O_APPEND, so lines from several processes do not interleave.
type auditLog struct {
	mu sync.Mutex
	f  *os.File
}

func openAudit(path string) (*auditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", path)
		}
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &auditLog{f: f}, nil
}

func (a *auditLog) write(r auditRecord) error {
	if a == nil {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return os.ErrClosed
	}
	_, err = a.f.Write(line)
	return err
}

func (a *auditLog) close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

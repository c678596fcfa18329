package ecrfake

import (
	"bytes"
	"context"
	"errors"
	"path"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// memDriver is distribution's in-memory driver with a fix for its writer,
// which grows its buffer to exactly the needed size on every Write: a blob
// written in 32 KiB pieces costs quadratic copying (64 MiB ran at 4 MiB/s).
// Writes are collected in a bytes.Buffer (amortised growth) and handed to
// the inner writer in one piece when the writer is closed or committed.
type memDriver struct {
	storagedriver.StorageDriver
}

func newMemDriver() storagedriver.StorageDriver { return memDriver{inmemory.New()} }

// Stat works around distribution's in-memory path lookup, which, when the
// last component names a directory holding a child of the same name,
// descends into that child: a tag called "index" (stored as
// tags/index/index/…) then did not exist for Stat and vanished from tag
// lists. A path the parent directory lists is a directory.
func (d memDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	fi, err := d.StorageDriver.Stat(ctx, p)
	var notFound storagedriver.PathNotFoundError
	if err == nil || !errors.As(err, &notFound) || p == "/" {
		return fi, err
	}
	entries, lerr := d.StorageDriver.List(ctx, path.Dir(p))
	if lerr != nil {
		return fi, err
	}
	for _, e := range entries {
		if e == p {
			return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, IsDir: true}}, nil
		}
	}
	return fi, err
}

// Walk walks through memDriver's own Stat and List, so the Stat fix above
// applies to tag listing too.
func (d memDriver) Walk(ctx context.Context, from string, f storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, from, f, options...)
}

func (d memDriver) Writer(ctx context.Context, path string, append bool) (storagedriver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, path, append)
	if err != nil {
		return nil, err
	}
	return &bufferedWriter{inner: w}, nil
}

type bufferedWriter struct {
	inner storagedriver.FileWriter
	buf   bytes.Buffer
}

func (w *bufferedWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *bufferedWriter) Size() int64 { return w.inner.Size() + int64(w.buf.Len()) }

func (w *bufferedWriter) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	_, err := w.inner.Write(w.buf.Bytes())
	w.buf = bytes.Buffer{}
	return err
}

func (w *bufferedWriter) Close() error {
	if err := w.flush(); err != nil {
		w.inner.Close()
		return err
	}
	return w.inner.Close()
}

func (w *bufferedWriter) Cancel(ctx context.Context) error {
	w.buf = bytes.Buffer{}
	return w.inner.Cancel(ctx)
}

func (w *bufferedWriter) Commit(ctx context.Context) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.inner.Commit(ctx)
}

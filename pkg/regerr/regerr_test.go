package regerr

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

func TestServe(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{errcode.ErrorCodeDenied.WithMessage("no"), 403, `"code":"DENIED","message":"no"`},
		{fmt.Errorf("wrapped: %w", errcode.ErrorCodeNameInvalid.WithMessage("bad")), 400, `"code":"NAME_INVALID","message":"bad"`},
		{errcode.ErrorCodeUnavailable, 503, `"code":"UNAVAILABLE"`},
		{errors.New("boom"), 500, `"code":"UNKNOWN","message":"boom"`},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		Serve(w, tt.err)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("Serve(%v) = %d %s", tt.err, w.Code, w.Body)
		}
	}
}

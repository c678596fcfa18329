// Package regerr writes registry API errors: distribution's errcode JSON
// ({"errors":[{"code":…,"message":…}]}) with the code's HTTP status. The
// emulator and the proxy both answer this way.
package regerr

import (
	"errors"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Serve writes err as a registry error. An errcode.Error or ErrorCode keeps
// its code and status; anything else is UNKNOWN (500) with err's text.
func Serve(w http.ResponseWriter, err error) {
	var ec errcode.Error
	if !errors.As(err, &ec) {
		var code errcode.ErrorCode
		if errors.As(err, &code) {
			ec = code.WithMessage(code.Message())
		} else {
			ec = errcode.ErrorCodeUnknown.WithMessage(err.Error())
		}
	}
	_ = errcode.ServeJSON(w, ec)
}

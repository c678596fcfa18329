package ecrfake

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

var roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/([\w+=,.@/-]{1,512})$`)

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsAssumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type stsAssumeResult struct {
	Credentials      stsCredentials     `xml:"Credentials"`
	AssumedRoleUser  stsAssumedRoleUser `xml:"AssumedRoleUser"`
	SubjectFromToken string             `xml:"SubjectFromWebIdentityToken,omitempty"`
}

type stsMetadata struct {
	RequestID string `xml:"RequestId"`
}

// stsError is an STS (query protocol) error.
type stsError struct {
	Status  int
	Code    string
	Message string
}

func writeSTSError(w http.ResponseWriter, e stsError) {
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	kind := "Sender"
	if e.Status >= 500 {
		kind = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		NS        string   `xml:"xmlns,attr"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{NS: stsNS, Error: errBody{kind, e.Code, e.Message}, RequestID: randomHex(16)})
}

func writeSTS(w http.ResponseWriter, action string, result any) {
	w.Header().Set("Content-Type", "text/xml")
	type resp struct {
		XMLName  xml.Name
		NS       string      `xml:"xmlns,attr"`
		Result   any         `xml:",any"`
		Metadata stsMetadata `xml:"ResponseMetadata"`
	}
	// encoding/xml names the result element after its XMLName field.
	_ = xml.NewEncoder(w).Encode(resp{XMLName: xml.Name{Local: action + "Response"}, NS: stsNS,
		Result: result, Metadata: stsMetadata{RequestID: randomHex(16)}})
}

// stsErrorFor maps an authentication failure to STS's error codes.
func stsErrorFor(ae *awsError) stsError {
	switch ae.Type {
	case "UnrecognizedClientException":
		return stsError{http.StatusForbidden, "InvalidClientTokenId", ae.Message}
	case "InvalidSignatureException":
		return stsError{http.StatusForbidden, "SignatureDoesNotMatch", ae.Message}
	case "MissingAuthenticationTokenException":
		return stsError{http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"}
	case "ExpiredTokenException":
		return stsError{http.StatusBadRequest, "ExpiredToken", ae.Message}
	}
	return stsError{http.StatusBadRequest, ae.Type, ae.Message}
}

func (e *Emulator) serveSTS(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeSTSError(w, stsError{http.StatusRequestEntityTooLarge, "ValidationError", "request body too large"})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeSTSError(w, stsError{http.StatusBadRequest, "MalformedInput", "request body is not form-encoded"})
		return
	}
	for k, v := range r.URL.Query() {
		if _, ok := form[k]; !ok {
			form[k] = v
		}
	}
	action := form.Get("Action")
	op := "STS." + action
	if !e.applyFault(w, r, op, faultSTS) {
		return
	}
	switch action {
	case "AssumeRoleWithWebIdentity":
		e.stsAssumeRole(w, form, nil, true)
	case "AssumeRole", "GetCallerIdentity":
		cred, aerr := e.authenticate(r, body, "sts")
		if aerr != nil {
			writeSTSError(w, stsErrorFor(aerr))
			return
		}
		if action == "AssumeRole" {
			e.stsAssumeRole(w, form, cred, false)
			return
		}
		userID := "AIDAECRFAKE" + strings.ToUpper(randomHex(4))
		if cred.RoleARN != "" {
			userID = "AROAECRFAKE:" + cred.ARN[strings.LastIndex(cred.ARN, "/")+1:]
		}
		writeSTS(w, "GetCallerIdentity", struct {
			XMLName xml.Name `xml:"GetCallerIdentityResult"`
			Arn     string   `xml:"Arn"`
			UserID  string   `xml:"UserId"`
			Account string   `xml:"Account"`
		}{Arn: cred.ARN, UserID: userID, Account: cred.Account})
	default:
		writeSTSError(w, stsError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", action)})
	}
}

func (e *Emulator) stsAssumeRole(w http.ResponseWriter, form url.Values, caller *credential, webIdentity bool) {
	roleARN, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	m := roleARNRE.FindStringSubmatch(roleARN)
	if m == nil {
		writeSTSError(w, stsError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("%q is not a valid role ARN (want arn:aws:iam::<account>:role/<name>)", roleARN)})
		return
	}
	if session == "" || len(session) > 64 {
		writeSTSError(w, stsError{http.StatusBadRequest, "ValidationError", "RoleSessionName must be 2 to 64 characters"})
		return
	}
	action := "sts:AssumeRole"
	who := ""
	if webIdentity {
		action = "sts:AssumeRoleWithWebIdentity"
		if strings.TrimSpace(form.Get("WebIdentityToken")) == "" {
			writeSTSError(w, stsError{http.StatusBadRequest, "InvalidIdentityToken", "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request."})
			return
		}
	} else {
		who = caller.ARN
	}
	if !e.knownAccount(m[1]) || (caller != nil && e.denied(caller, action)) || e.deniedARN(roleARN, "trust") {
		if who == "" {
			who = "arn:aws:sts::" + m[1] + ":federated-user/web-identity"
		}
		writeSTSError(w, stsError{http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", who, action, roleARN)})
		return
	}
	roleName := m[2][strings.LastIndex(m[2], "/")+1:]
	cred, keyID := e.issueCredentials(m[1], "arn:aws:sts::"+m[1]+":assumed-role/"+roleName+"/"+session, roleARN)
	res := stsAssumeResult{
		Credentials: stsCredentials{AccessKeyID: keyID, SecretAccessKey: cred.Secret, SessionToken: cred.SessionToken,
			Expiration: cred.Expires.UTC().Format(time.RFC3339)},
		AssumedRoleUser: stsAssumedRoleUser{AssumedRoleID: "AROAECRFAKE:" + session, Arn: cred.ARN},
	}
	name := "AssumeRoleResult"
	if webIdentity {
		name = "AssumeRoleWithWebIdentityResult"
		res.SubjectFromToken = "ecrfake-subject"
	}
	action = strings.TrimPrefix(action, "sts:")
	writeSTS(w, action, struct {
		XMLName xml.Name
		stsAssumeResult
	}{xml.Name{Local: name}, res})
}

// deniedARN reports a denial registered for a role itself (DenyAction(roleARN, "trust")
// makes every AssumeRole of that role fail).
func (e *Emulator) deniedARN(arn, action string) bool {
	e.denyMu.Lock()
	defer e.denyMu.Unlock()
	return e.deny[arn][action]
}

// issueCredentials mints temporary credentials and returns them with their key id.
func (e *Emulator) issueCredentials(account, arn, roleARN string) (*credential, string) {
	keyID := "ASIAECRFAKE" + strings.ToUpper(randomHex(5))
	c := &credential{Secret: randomHex(20), SessionToken: "ecrfake-session-" + randomHex(48), Account: account,
		ARN: arn, RoleARN: roleARN, Expires: e.opts.Now().Add(e.opts.CredentialLifetime).Truncate(time.Second)}
	e.st.mu.Lock()
	now := e.opts.Now()
	for k, old := range e.st.Creds { // forget long-expired temporary keys
		if !old.Expires.IsZero() && now.Sub(old.Expires) > time.Hour {
			delete(e.st.Creds, k)
		}
	}
	e.st.Creds[keyID] = c
	if err := e.st.save(); err != nil {
		e.log.Warn("emulator state not saved", "err", err)
	}
	e.st.mu.Unlock()
	return c, keyID
}

// serveSSO is the SSO portal's GetRoleCredentials (GET /federation/credentials).
func (e *Emulator) serveSSO(w http.ResponseWriter, r *http.Request) {
	if !e.applyFault(w, r, OpGetRoleCreds, faultSSO) {
		return
	}
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	token := r.Header.Get("X-Amz-Sso_bearer_token")
	if token == "" || (len(e.opts.SSOTokens) > 0 && !contains(e.opts.SSOTokens, token)) {
		fail(http.StatusUnauthorized, "UnauthorizedException", "Session token not found or invalid")
		return
	}
	q := r.URL.Query()
	account, role := q.Get("account_id"), q.Get("role_name")
	if !accountRE.MatchString(account) || role == "" {
		fail(http.StatusBadRequest, "InvalidRequestException", "account_id (12 digits) and role_name are required")
		return
	}
	if !e.knownAccount(account) {
		fail(http.StatusForbidden, "ForbiddenException", "No access")
		return
	}
	roleARN := "arn:aws:iam::" + account + ":role/AWSReservedSSO_" + role
	if e.deniedARN(roleARN, "trust") {
		fail(http.StatusForbidden, "ForbiddenException", "No access")
		return
	}
	cred, keyID := e.issueCredentials(account, "arn:aws:sts::"+account+":assumed-role/AWSReservedSSO_"+role+"/ecrfake-sso-user", roleARN)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"roleCredentials": map[string]any{
		"accessKeyId": keyID, "secretAccessKey": cred.Secret, "sessionToken": cred.SessionToken,
		"expiration": cred.Expires.UnixMilli(),
	}})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type faultKind int

const (
	faultJSON faultKind = iota
	faultRegistry
	faultSTS
	faultSSO
)

// applyFault counts the call, waits the configured latency and injects a
// pending fault. It returns false when the request was answered (or dropped).
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, op string, kind faultKind) bool {
	f, err := e.faults.begin(r.Context(), op)
	if err != nil {
		return false // the client went away while we waited
	}
	if n, ok := f.cutAfter(); ok {
		cutBody(r, n) // the handler goes on and loses the connection mid-body
		return true
	}
	switch f {
	case "":
		return true
	case FaultDrop:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return false
		}
		panic(http.ErrAbortHandler) // net/http's documented way to abort a response it cannot hijack
	}
	throttle := f == FaultThrottle
	switch kind {
	case faultJSON:
		if throttle {
			writeAWSError(w, &awsError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"})
		} else {
			writeAWSError(w, &awsError{http.StatusInternalServerError, "ServerException", "Internal service error (injected by ecrfake)"})
		}
	case faultRegistry:
		if throttle {
			serveRegistryError(w, errTooManyRequests)
		} else {
			serveRegistryError(w, errInjected500)
		}
	case faultSTS:
		if throttle {
			writeSTSError(w, stsError{http.StatusBadRequest, "Throttling", "Rate exceeded"})
		} else {
			writeSTSError(w, stsError{http.StatusInternalServerError, "InternalFailure", "Internal failure (injected by ecrfake)"})
		}
	case faultSSO:
		typ, status := "InternalServerException", http.StatusInternalServerError
		if throttle {
			typ, status = "TooManyRequestsException", http.StatusTooManyRequests
		}
		w.Header().Set("X-Amzn-Errortype", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "injected by ecrfake"})
	}
	return false
}

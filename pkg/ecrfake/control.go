package ecrfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrname"
)

const (
	ecrTargetPrefix       = "AmazonEC2ContainerRegistry_V20150921."
	ecrPublicTargetPrefix = "SpencerFrontendService."
	maxControlBody        = 1 << 20
)

// awsError is an AWS JSON 1.1 error: HTTP status, exception name, message.
type awsError struct {
	Status  int
	Type    string
	Message string
}

func (e *awsError) Error() string { return e.Type + ": " + e.Message }

func errInvalidParam(format string, args ...any) *awsError {
	return &awsError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func errRepoNotFound(name, account string) *awsError {
	return &awsError{http.StatusBadRequest, "RepositoryNotFoundException",
		fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", name, account)}
}

// call is one control-plane request after authentication.
type call struct {
	ctx    context.Context
	e      *Emulator
	op     string
	cred   *credential
	region string
	body   []byte
}

func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return &awsError{http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected: " + err.Error()}
	}
	return nil
}

type opFunc func(c *call) (any, error)

var ecrOps = map[string]opFunc{
	"GetAuthorizationToken":               opGetAuthorizationToken,
	"CreateRepository":                    opCreateRepository,
	"DescribeRepositories":                opDescribeRepositories,
	"DeleteRepository":                    opDeleteRepository,
	"PutLifecyclePolicy":                  opPutLifecyclePolicy,
	"GetLifecyclePolicy":                  opGetLifecyclePolicy,
	"DeleteLifecyclePolicy":               opDeleteLifecyclePolicy,
	"SetRepositoryPolicy":                 opSetRepositoryPolicy,
	"GetRepositoryPolicy":                 opGetRepositoryPolicy,
	"DeleteRepositoryPolicy":              opDeleteRepositoryPolicy,
	"ListTagsForResource":                 opListTagsForResource,
	"TagResource":                         opTagResource,
	"UntagResource":                       opUntagResource,
	"ListImages":                          opListImages,
	"DescribeImages":                      opDescribeImages,
	"BatchGetImage":                       opBatchGetImage,
	"BatchDeleteImage":                    opBatchDeleteImage,
	"BatchCheckLayerAvailability":         opBatchCheckLayerAvailability,
	"InitiateLayerUpload":                 opInitiateLayerUpload,
	"UploadLayerPart":                     opUploadLayerPart,
	"CompleteLayerUpload":                 opCompleteLayerUpload,
	"GetDownloadUrlForLayer":              opGetDownloadURLForLayer,
	"PutImage":                            opPutImage,
	"CreateRepositoryCreationTemplate":    opCreateTemplate,
	"DescribeRepositoryCreationTemplates": opDescribeTemplates,
	"DeleteRepositoryCreationTemplate":    opDeleteTemplate,

	// settings.go
	"PutImageTagMutability":                   opPutImageTagMutability,
	"PutImageScanningConfiguration":           opPutImageScanningConfiguration,
	"DescribeRegistry":                        opDescribeRegistry,
	"GetRegistryScanningConfiguration":        opGetRegistryScanningConfiguration,
	"PutRegistryScanningConfiguration":        opPutRegistryScanningConfiguration,
	"PutReplicationConfiguration":             opPutReplicationConfiguration,
	"BatchGetRepositoryScanningConfiguration": opBatchGetRepositoryScanningConfiguration,
	"UpdateRepositoryCreationTemplate":        opUpdateTemplate,
	"CreatePullThroughCacheRule":              opCreatePullThroughCacheRule,
	"DescribePullThroughCacheRules":           opDescribePullThroughCacheRules,
	"DeletePullThroughCacheRule":              opDeletePullThroughCacheRule,
	"UpdatePullThroughCacheRule":              opUpdatePullThroughCacheRule,
	"ValidatePullThroughCacheRule":            opValidatePullThroughCacheRule,
	// scanning.go
	"StartImageScan":            opStartImageScan,
	"DescribeImageScanFindings": opDescribeImageScanFindings,
	// account.go
	"GetAccountSetting":    opGetAccountSetting,
	"PutAccountSetting":    opPutAccountSetting,
	"GetRegistryPolicy":    opGetRegistryPolicy,
	"PutRegistryPolicy":    opPutRegistryPolicy,
	"DeleteRegistryPolicy": opDeleteRegistryPolicy,
	// lifecycle.go
	"StartLifecyclePolicyPreview": opStartLifecyclePolicyPreview,
	"GetLifecyclePolicyPreview":   opGetLifecyclePolicyPreview,
	// pulltime.go
	"RegisterPullTimeUpdateExclusion":   opRegisterPullTimeUpdateExclusion,
	"DeregisterPullTimeUpdateExclusion": opDeregisterPullTimeUpdateExclusion,
	"ListPullTimeUpdateExclusions":      opListPullTimeUpdateExclusions,
	// referrers.go
	"ListImageReferrers": opListImageReferrers,
}

// serveJSON handles AWS JSON 1.1 requests (ECR and ECR Public).
func (e *Emulator) serveJSON(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	var op, service, action string
	var fn opFunc
	switch {
	case strings.HasPrefix(target, ecrTargetPrefix):
		op = strings.TrimPrefix(target, ecrTargetPrefix)
		service, action, fn = "ecr", "ecr:"+op, ecrOps[op]
	case target == ecrPublicTargetPrefix+"GetAuthorizationToken":
		op, service, action, fn = OpPublicGetAuthTok, "ecr-public", "ecr-public:GetAuthorizationToken", opPublicGetAuthorizationToken
	}
	if fn == nil {
		writeAWSError(w, &awsError{http.StatusBadRequest, "UnknownOperationException", "Unknown operation " + target})
		return
	}
	if !e.applyFault(w, r, op, faultJSON) {
		return
	}
	limit := int64(maxControlBody)
	switch op {
	case "UploadLayerPart":
		limit = maxLayerPartBody
	case "PutImage":
		limit = maxPutImageBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeAWSError(w, &awsError{http.StatusRequestEntityTooLarge, "SerializationException", "request body too large"})
		return
	}
	cred, aerr := e.authenticate(r, body, service)
	if aerr != nil {
		writeAWSError(w, aerr)
		return
	}
	sig, _ := parseSigV4(r)
	c := &call{ctx: r.Context(), e: e, op: op, cred: cred, region: sig.Region, body: body}
	if e.denied(cred, action) {
		writeAWSError(w, &awsError{http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf(
			"User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
			cred.callerARN(), action, c.resourceForDenial(), action)})
		return
	}
	out, err := fn(c)
	if err != nil {
		var ae *awsError
		if !errors.As(err, &ae) {
			ae = &awsError{http.StatusInternalServerError, "ServerException", err.Error()}
		}
		writeAWSError(w, ae)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", randomHex(16))
	_ = json.NewEncoder(w).Encode(out)
}

func (c *call) resourceForDenial() string {
	var in struct {
		RegistryID     string `json:"registryId"`
		RepositoryName string `json:"repositoryName"`
	}
	_ = json.Unmarshal(c.body, &in)
	if in.RepositoryName == "" {
		return "*"
	}
	acct := in.RegistryID
	if acct == "" {
		acct = c.cred.Account
	}
	return repoARN(c.region, acct, in.RepositoryName)
}

func writeAWSError(w http.ResponseWriter, e *awsError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.Type)
	w.Header().Set("X-Amzn-Requestid", randomHex(16))
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Type, "message": e.Message})
}

// authenticate verifies the SigV4 signature of a request for service and
// returns the signer's credential.
func (e *Emulator) authenticate(r *http.Request, body []byte, service string) (*credential, *awsError) {
	s, err := parseSigV4(r)
	if err != nil {
		var se *errSig
		errors.As(err, &se)
		return nil, &awsError{http.StatusBadRequest, se.Type, se.Message}
	}
	now := e.opts.Now()
	e.st.mu.Lock()
	cred := e.st.Creds[s.AccessKey]
	var c credential
	if cred != nil {
		c = *cred
	}
	e.st.mu.Unlock()
	if cred == nil {
		return nil, &awsError{http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."}
	}
	if c.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != c.SessionToken {
		return nil, &awsError{http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."}
	}
	if !c.Expires.IsZero() && now.After(c.Expires) {
		return nil, &awsError{http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired"}
	}
	if s.Service != service {
		return nil, &awsError{http.StatusBadRequest, "InvalidSignatureException", "Credential should be scoped to correct service: '" + service + "'. "}
	}
	if err := verifySigV4(r, body, s, c.Secret, now); err != nil {
		var se *errSig
		errors.As(err, &se)
		return nil, &awsError{http.StatusBadRequest, se.Type, se.Message}
	}
	return &c, nil
}

// callerARN is the identity as AWS names it in errors and GetCallerIdentity.
func (c *credential) callerARN() string { return c.ARN }

func repoARN(region, account, name string) string {
	return "arn:aws:ecr:" + region + ":" + account + ":repository/" + name
}

func registryHost(account, region string) string {
	return account + ".dkr.ecr." + region + ".amazonaws.com"
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// registryFor resolves an optional registryId to a registry in the caller's region.
func (c *call) registryFor(id string) (*registryState, error) {
	if id == "" {
		id = c.cred.Account
	}
	if !accountRE.MatchString(id) {
		return nil, errInvalidParam("Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{12}''")
	}
	if !c.e.knownAccount(id) {
		return nil, &awsError{http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf(
			"User: %s is not authorized to perform: ecr:%s on resource: arn:aws:ecr:%s:%s:repository/* because no resource-based policy allows the ecr:%s action",
			c.cred.ARN, c.op, c.region, id, c.op)}
	}
	return c.e.st.registry(id, c.region), nil
}

// --- GetAuthorizationToken ---------------------------------------------------

type authorizationData struct {
	AuthorizationToken string  `json:"authorizationToken"`
	ExpiresAt          float64 `json:"expiresAt"`
	ProxyEndpoint      string  `json:"proxyEndpoint,omitempty"`
}

// newToken issues a token for account and returns the base64 "AWS:<password>"
// value and its expiry. The caller holds st.mu.
func (e *Emulator) newToken(account, region, principal string) (string, time.Time) {
	now := e.opts.Now()
	for p, t := range e.st.Tokens { // drop long-expired tokens so the map stays small
		if now.Sub(t.Expires) > time.Hour {
			delete(e.st.Tokens, p)
		}
	}
	raw := make([]byte, 1024) // real ECR passwords are about this long
	_, _ = rand.Read(raw)
	password := base64.StdEncoding.EncodeToString(raw)
	exp := now.Add(e.opts.TokenLifetime)
	e.st.Tokens[password] = &authToken{Account: account, Region: region, Principal: principal, Expires: exp}
	return base64.StdEncoding.EncodeToString([]byte("AWS:" + password)), exp
}

func opGetAuthorizationToken(c *call) (any, error) {
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.RegistryIDs) == 0 {
		in.RegistryIDs = []string{c.cred.Account}
	}
	if len(in.RegistryIDs) > 10 {
		return nil, errInvalidParam("Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must have length less than or equal to 10'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	var out []authorizationData
	for _, id := range in.RegistryIDs {
		if _, err := c.registryFor(id); err != nil {
			return nil, err
		}
		tok, exp := c.e.newToken(id, c.region, c.cred.ARN)
		out = append(out, authorizationData{AuthorizationToken: tok, ExpiresAt: epoch(exp),
			ProxyEndpoint: "https://" + registryHost(id, c.region)})
	}
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"authorizationData": out}, nil
}

func opPublicGetAuthorizationToken(c *call) (any, error) {
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	tok, exp := c.e.newToken("public", "us-east-1", c.cred.ARN)
	return map[string]any{"authorizationData": authorizationData{AuthorizationToken: tok, ExpiresAt: epoch(exp)}}, nil
}

// --- repositories ------------------------------------------------------------

type repositoryOut struct {
	RepositoryArn                      string            `json:"repositoryArn"`
	RegistryID                         string            `json:"registryId"`
	RepositoryName                     string            `json:"repositoryName"`
	RepositoryURI                      string            `json:"repositoryUri"`
	CreatedAt                          float64           `json:"createdAt"`
	ImageTagMutability                 string            `json:"imageTagMutability"`
	ImageTagMutabilityExclusionFilters []exclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
	ImageScanningConfiguration         struct {
		ScanOnPush bool `json:"scanOnPush"`
	} `json:"imageScanningConfiguration"`
	EncryptionConfiguration encryptionConfig `json:"encryptionConfiguration"`
}

func repoOut(reg *registryState, r *repository) repositoryOut {
	o := repositoryOut{RepositoryArn: repoARN(reg.Region, reg.Account, r.Name), RegistryID: reg.Account,
		RepositoryName: r.Name, RepositoryURI: registryHost(reg.Account, reg.Region) + "/" + r.Name,
		CreatedAt: epoch(r.CreatedAt), ImageTagMutability: r.TagMutability,
		ImageTagMutabilityExclusionFilters: r.ExclusionFilters, EncryptionConfiguration: r.Encryption}
	o.ImageScanningConfiguration.ScanOnPush = r.ScanOnPush
	return o
}

func opCreateRepository(c *call) (any, error) {
	var in struct {
		RegistryID                         string                     `json:"registryId"`
		RepositoryName                     string                     `json:"repositoryName"`
		Tags                               []resourceTag              `json:"tags"`
		ImageTagMutability                 string                     `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []exclusionFilter          `json:"imageTagMutabilityExclusionFilters"`
		ImageScanningConfiguration         *struct{ ScanOnPush bool } `json:"imageScanningConfiguration"`
		EncryptionConfiguration            *encryptionConfig          `json:"encryptionConfiguration"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := validateRepoName(in.RepositoryName); err != nil {
		return nil, err
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, err
	}
	mut, err := validateMutability(in.ImageTagMutability, in.ImageTagMutabilityExclusionFilters)
	if err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor(in.RegistryID)
	if err != nil {
		return nil, err
	}
	enc, err := validateEncryption(in.EncryptionConfiguration, reg)
	if err != nil {
		return nil, err
	}
	r := &repository{Name: in.RepositoryName, CreatedAt: c.e.opts.Now(), TagMutability: mut,
		ExclusionFilters: in.ImageTagMutabilityExclusionFilters, Encryption: enc, Tags: in.Tags, CreatedBy: "api"}
	if in.ImageScanningConfiguration != nil {
		r.ScanOnPush = in.ImageScanningConfiguration.ScanOnPush
	}
	if err := c.e.addRepository(reg, r); err != nil {
		return nil, err
	}
	return map[string]any{"repository": repoOut(reg, r)}, nil
}

// addRepository stores a new repository. The caller holds st.mu.
func (e *Emulator) addRepository(reg *registryState, r *repository) error {
	if reg.Repositories[r.Name] != nil {
		return &awsError{http.StatusBadRequest, "RepositoryAlreadyExistsException",
			fmt.Sprintf("The repository with name '%s' already exists in the registry with id '%s'", r.Name, reg.Account)}
	}
	if len(reg.Repositories) >= e.opts.MaxRepositories {
		return &awsError{http.StatusBadRequest, "LimitExceededException",
			fmt.Sprintf("The operation did not succeed because it would cause a service quota to be exceeded: repositories per registry (%d).", e.opts.MaxRepositories)}
	}
	reg.Repositories[r.Name] = r
	return e.st.save()
}

func validateRepoName(name string) error {
	if err := ecrname.ValidateRepository(name); err != nil {
		var ne *ecrname.Error
		errors.As(err, &ne)
		return errInvalidParam("Invalid parameter at 'repositoryName' failed to satisfy constraint: '%s'", ne.Reason)
	}
	return nil
}

var filterRE = regexp.MustCompile(`^[0-9a-zA-Z._*-]{1,128}$`)

func validateMutability(m string, filters []exclusionFilter) (string, error) {
	if m == "" {
		m = mutable
	}
	switch m {
	case mutable, immutable:
		if len(filters) > 0 {
			return "", errInvalidParam("Invalid parameter at 'imageTagMutabilityExclusionFilters': exclusion filters can only be used with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION")
		}
	case immutableWithExclusion, mutableWithExclusion:
		if len(filters) == 0 {
			return "", errInvalidParam("Invalid parameter at 'imageTagMutabilityExclusionFilters': %s requires at least one exclusion filter", m)
		}
		if len(filters) > 5 {
			return "", errInvalidParam("Invalid parameter at 'imageTagMutabilityExclusionFilters': at most 5 exclusion filters are allowed")
		}
		for _, f := range filters {
			if f.FilterType != "WILDCARD" {
				return "", errInvalidParam("Invalid parameter at 'filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]'")
			}
			if !filterRE.MatchString(f.Filter) {
				return "", errInvalidParam("Invalid parameter at 'filter' failed to satisfy constraint: 'must be 1-128 characters of [0-9a-zA-Z._*-]', got %q", f.Filter)
			}
		}
	default:
		return "", errInvalidParam("Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'")
	}
	return m, nil
}

func validateEncryption(in *encryptionConfig, reg *registryState) (encryptionConfig, error) {
	if in == nil || in.EncryptionType == "" {
		if in != nil && in.KMSKey != "" {
			return encryptionConfig{}, errInvalidParam("Invalid parameter at 'encryptionConfiguration': kmsKey can only be specified when encryptionType is KMS or KMS_DSSE")
		}
		return encryptionConfig{EncryptionType: "AES256"}, nil
	}
	switch in.EncryptionType {
	case "AES256":
		if in.KMSKey != "" {
			return encryptionConfig{}, errInvalidParam("Invalid parameter at 'encryptionConfiguration': kmsKey can only be specified when encryptionType is KMS or KMS_DSSE")
		}
		return *in, nil
	case "KMS", "KMS_DSSE":
		out := *in
		if out.KMSKey == "" { // ECR uses the AWS managed key
			out.KMSKey = "arn:aws:kms:" + reg.Region + ":" + reg.Account + ":alias/aws/ecr"
		}
		if len(out.KMSKey) > 2048 {
			return encryptionConfig{}, errInvalidParam("Invalid parameter at 'kmsKey': must be at most 2048 characters")
		}
		return out, nil
	}
	return encryptionConfig{}, errInvalidParam("Invalid parameter at 'encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]'")
}

func validateTags(tags []resourceTag) error {
	if len(tags) > 50 {
		return &awsError{http.StatusBadRequest, "TooManyTagsException", fmt.Sprintf("Tag limit exceeded: %d tags given, at most 50 are allowed per resource.", len(tags))}
	}
	seen := map[string]bool{}
	for _, t := range tags {
		switch {
		case t.Key == "" || len(t.Key) > 128:
			return &awsError{http.StatusBadRequest, "InvalidTagParameterException", fmt.Sprintf("Tag key %q must be 1 to 128 characters long.", t.Key)}
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return &awsError{http.StatusBadRequest, "InvalidTagParameterException", fmt.Sprintf("Tag key %q must not start with the reserved prefix 'aws:'.", t.Key)}
		case len(t.Value) > 256:
			return &awsError{http.StatusBadRequest, "InvalidTagParameterException", fmt.Sprintf("Value of tag %q must be at most 256 characters long.", t.Key)}
		case seen[t.Key]:
			return &awsError{http.StatusBadRequest, "InvalidTagParameterException", fmt.Sprintf("Tag key %q is given more than once.", t.Key)}
		}
		seen[t.Key] = true
	}
	return nil
}

func opDescribeRepositories(c *call) (any, error) {
	var in struct {
		RegistryID      string   `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
		NextToken       string   `json:"nextToken"`
		MaxResults      int      `json:"maxResults"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.RepositoryNames) > 0 && (in.MaxResults != 0 || in.NextToken != "") {
		return nil, errInvalidParam("maxResults and nextToken cannot be used with repositoryNames")
	}
	if in.MaxResults < 0 || in.MaxResults > 1000 {
		return nil, errInvalidParam("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor(in.RegistryID)
	if err != nil {
		return nil, err
	}
	out := []repositoryOut{}
	if len(in.RepositoryNames) > 0 {
		for _, n := range in.RepositoryNames {
			r := reg.Repositories[n]
			if r == nil {
				return nil, errRepoNotFound(n, reg.Account)
			}
			out = append(out, repoOut(reg, r))
		}
		return map[string]any{"repositories": out}, nil
	}
	names := reg.sortedRepoNames()
	page, next, err := paginate(names, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	for _, n := range page {
		out = append(out, repoOut(reg, reg.Repositories[n]))
	}
	resp := map[string]any{"repositories": out}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

// paginate pages through sorted keys; the token is the last key returned.
func paginate(sorted []string, token string, max int) (page []string, next string, err error) {
	if max == 0 {
		max = 100
	}
	start := 0
	if token != "" {
		last, derr := base64.RawURLEncoding.DecodeString(token)
		if derr != nil {
			return nil, "", errInvalidParam("Invalid parameter at 'nextToken': the pagination token is not valid")
		}
		for start < len(sorted) && sorted[start] <= string(last) {
			start++
		}
	}
	end := min(start+max, len(sorted))
	page = sorted[start:end]
	if end < len(sorted) {
		next = base64.RawURLEncoding.EncodeToString([]byte(sorted[end-1]))
	}
	return page, next, nil
}

type repoRef struct {
	RegistryID     string `json:"registryId"`
	RepositoryName string `json:"repositoryName"`
}

// lookupRepo finds an existing repository. The caller holds st.mu.
func (c *call) lookupRepo(ref repoRef) (*registryState, *repository, error) {
	reg, err := c.registryFor(ref.RegistryID)
	if err != nil {
		return nil, nil, err
	}
	if err := validateRepoName(ref.RepositoryName); err != nil {
		return nil, nil, err
	}
	r := reg.Repositories[ref.RepositoryName]
	if r == nil {
		return nil, nil, errRepoNotFound(ref.RepositoryName, reg.Account)
	}
	return reg, r, nil
}

func opDeleteRepository(c *call) (any, error) {
	var in struct {
		repoRef
		Force bool `json:"force"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(in.repoRef)
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ctx := c.ctx
	tags, err := c.e.data.tags(ctx, reg.Account, reg.Region, r.Name)
	if err != nil {
		return nil, err
	}
	if len(tags) > 0 && !in.Force {
		return nil, &awsError{http.StatusBadRequest, "RepositoryNotEmptyException", fmt.Sprintf(
			"The repository with name '%s' in registry with id '%s' cannot be deleted because it still contains images", r.Name, reg.Account)}
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	if reg.Repositories[r.Name] != r {
		return nil, errRepoNotFound(r.Name, reg.Account)
	}
	if err := c.e.data.deleteRepository(ctx, reg.Account, reg.Region, r.Name); err != nil {
		return nil, err
	}
	delete(reg.Repositories, r.Name)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"repository": repoOut(reg, r)}, nil
}

func opPutLifecyclePolicy(c *call) (any, error) {
	var in struct {
		repoRef
		LifecyclePolicyText string `json:"lifecyclePolicyText"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return lifecyclePolicy.put(c, in.repoRef, in.LifecyclePolicyText)
}

func validateLifecyclePolicy(text string) error {
	if len(text) < 100 || len(text) > 30720 {
		return errInvalidParam("Invalid parameter at 'lifecyclePolicyText' failed to satisfy constraint: 'Member must have length between 100 and 30720' (it has %d)", len(text))
	}
	_, err := parseLifecyclePolicy(text) // lifecycle.go
	return err
}

func validateRepositoryPolicy(text string) error {
	if text == "" || len(text) > 10240 {
		return errInvalidParam("Invalid parameter at 'policyText' failed to satisfy constraint: 'Member must have length between 0 and 10240' (it has %d)", len(text))
	}
	var doc struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil || len(doc.Statement) == 0 {
		return errInvalidParam("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
	}
	return nil
}

func opSetRepositoryPolicy(c *call) (any, error) {
	var in struct {
		repoRef
		PolicyText string `json:"policyText"`
		Force      bool   `json:"force"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return repositoryPolicy.put(c, in.repoRef, in.PolicyText)
}

// repoPolicy is one of a repository's two policy texts, as its Put, Get
// and Delete operations see it.
type repoPolicy struct {
	text     func(*repository) *string
	key      string // field of the answer: lifecyclePolicyText or policyText
	missing  string // exception when there is none
	what     string // for the message
	validate func(string) error
}

var (
	lifecyclePolicy  = repoPolicy{func(r *repository) *string { return &r.LifecyclePolicy }, "lifecyclePolicyText", "LifecyclePolicyNotFoundException", "Lifecycle policy", validateLifecyclePolicy}
	repositoryPolicy = repoPolicy{func(r *repository) *string { return &r.Policy }, "policyText", "RepositoryPolicyNotFoundException", "Repository policy", validateRepositoryPolicy}
)

// put validates and stores the policy text under one lock.
func (p repoPolicy) put(c *call, ref repoRef, text string) (any, error) {
	if err := p.validate(text); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, r, err := c.lookupRepo(ref)
	if err != nil {
		return nil, err
	}
	*p.text(r) = text
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryName": r.Name, p.key: text}, nil
}

// answer returns the policy (and, with remove, deletes it) under one lock.
func (p repoPolicy) answer(c *call, remove bool) (any, error) {
	var in repoRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, r, err := c.lookupRepo(in)
	if err != nil {
		return nil, err
	}
	text := p.text(r)
	if *text == "" {
		return nil, &awsError{http.StatusBadRequest, p.missing, fmt.Sprintf(
			"%s does not exist for the repository with name '%s' in the registry with id '%s'", p.what, r.Name, reg.Account)}
	}
	out := map[string]any{"registryId": reg.Account, "repositoryName": r.Name, p.key: *text}
	if remove {
		*text = ""
		if err := c.e.st.save(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func opGetLifecyclePolicy(c *call) (any, error)     { return lifecyclePolicy.answer(c, false) }
func opDeleteLifecyclePolicy(c *call) (any, error)  { return lifecyclePolicy.answer(c, true) }
func opGetRepositoryPolicy(c *call) (any, error)    { return repositoryPolicy.answer(c, false) }
func opDeleteRepositoryPolicy(c *call) (any, error) { return repositoryPolicy.answer(c, true) }

var repoARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:ecr:([a-z0-9-]+):([0-9]{12}):repository/(.+)$`)

// repoByARN finds a repository from its ARN. The caller holds st.mu.
func (c *call) repoByARN(arn string) (*repository, error) {
	m := repoARNRE.FindStringSubmatch(arn)
	if m == nil {
		return nil, errInvalidParam("Invalid parameter at 'resourceArn': %q is not an ECR repository ARN", arn)
	}
	if !c.e.knownAccount(m[2]) {
		return nil, errRepoNotFound(m[3], m[2])
	}
	reg := c.e.st.registry(m[2], m[1])
	r := reg.Repositories[m[3]]
	if r == nil {
		return nil, errRepoNotFound(m[3], m[2])
	}
	return r, nil
}

func opListTagsForResource(c *call) (any, error) {
	var in struct {
		ResourceArn string `json:"resourceArn"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	r, err := c.repoByARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	tags := append([]resourceTag{}, r.Tags...)
	return map[string]any{"tags": tags}, nil
}

func opTagResource(c *call) (any, error) {
	var in struct {
		ResourceArn string        `json:"resourceArn"`
		Tags        []resourceTag `json:"tags"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	r, err := c.repoByARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	merged := append([]resourceTag{}, r.Tags...)
	for _, t := range in.Tags {
		replaced := false
		for i := range merged {
			if merged[i].Key == t.Key {
				merged[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			merged = append(merged, t)
		}
	}
	if err := validateTags(merged); err != nil {
		return nil, err
	}
	r.Tags = merged
	return map[string]any{}, c.e.st.save()
}

func opUntagResource(c *call) (any, error) {
	var in struct {
		ResourceArn string   `json:"resourceArn"`
		TagKeys     []string `json:"tagKeys"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	r, err := c.repoByARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	var kept []resourceTag
	for _, t := range r.Tags {
		drop := false
		for _, k := range in.TagKeys {
			drop = drop || k == t.Key
		}
		if !drop {
			kept = append(kept, t)
		}
	}
	r.Tags = kept
	return map[string]any{}, c.e.st.save()
}

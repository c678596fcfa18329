package ecrfake

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Pull times: ECR records when an image was last pulled (DescribeImages'
// lastRecordedPullTime; ECR refreshes it at least once a day, the emulator at
// every pull) except for the principals on the registry's pull-time update
// exclusion list (Register/Deregister/ListPullTimeUpdateExclusions). A pull is
// a successful GET of a manifest through the registry or a BatchGetImage.

// maxPullTimeExclusions is ECR's quota of exclusions per registry.
const maxPullTimeExclusions = 5

// exclusionARNRE is the shape ECR accepts for principalArn: an IAM user or role.
var exclusionARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(user|role)/[\w+=,.@/-]{1,512}$`)

// iamPrincipal turns an STS assumed-role session ARN into the ARN of its
// role, which is what an exclusion or a policy's Principal names; other ARNs
// are returned unchanged.
func iamPrincipal(arn string) string {
	// arn:<partition>:sts::<account>:assumed-role/<role>/<session>
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" || !strings.HasPrefix(parts[5], "assumed-role/") {
		return arn
	}
	role := strings.TrimPrefix(parts[5], "assumed-role/")
	if i := strings.LastIndex(role, "/"); i >= 0 {
		role = role[:i]
	}
	return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + role
}

// recordPull notes that principal pulled manifest dg of repository name in
// the registry (account, region), unless the principal is excluded. It saves
// the state; a failure to save is logged, never failing the pull.
func (e *Emulator) recordPull(account, region, name, dg, principal string) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	reg := e.st.Registries[registryKey(account, region)]
	if reg == nil {
		return
	}
	r := reg.Repositories[name]
	if r == nil {
		return
	}
	if _, excluded := reg.PullTimeExclusions[iamPrincipal(principal)]; excluded {
		return
	}
	if r.LastPulled == nil {
		r.LastPulled = map[string]time.Time{}
	}
	r.LastPulled[dg] = e.opts.Now().UTC()
	if err := e.st.save(); err != nil {
		e.log.Warn("record image pull time", "repository", name, "err", err)
	}
}

// pullRecorder wraps w so that a successful manifest GET records the pull of
// the digest the registry answered with.
func (d *dataPlane) pullRecorder(w http.ResponseWriter, r *http.Request, account, region string, rt route, principal string) http.ResponseWriter {
	if r.Method != http.MethodGet {
		return w // HEAD is not a pull
	}
	var sh *statusHook
	sh = &statusHook{ResponseWriter: w, hook: func(code int) {
		if code != http.StatusOK {
			return
		}
		dg := sh.Header().Get("Docker-Content-Digest")
		if dg == "" {
			dg = rt.ref
		}
		d.e.recordPull(account, region, rt.name, dg, principal)
	}}
	return sh
}

func validateExclusionARN(arn string) error {
	if !exclusionARNRE.MatchString(arn) {
		return errInvalidParam("Invalid parameter at 'principalArn' failed to satisfy constraint: 'must be the ARN of an IAM user or role'")
	}
	return nil
}

type pullTimeExclusionIn struct {
	PrincipalArn string `json:"principalArn"`
}

func opRegisterPullTimeUpdateExclusion(c *call) (any, error) {
	var in pullTimeExclusionIn
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := validateExclusionARN(in.PrincipalArn); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	if _, ok := reg.PullTimeExclusions[in.PrincipalArn]; ok {
		return nil, &awsError{http.StatusBadRequest, "ExclusionAlreadyExistsException", fmt.Sprintf(
			"The principal '%s' is already excluded from pull time updates in the registry with id '%s'", in.PrincipalArn, reg.Account)}
	}
	if len(reg.PullTimeExclusions) >= maxPullTimeExclusions {
		return nil, &awsError{http.StatusBadRequest, "LimitExceededException", fmt.Sprintf(
			"The registry with id '%s' already has the maximum of %d pull time update exclusions", reg.Account, maxPullTimeExclusions)}
	}
	if reg.PullTimeExclusions == nil {
		reg.PullTimeExclusions = map[string]time.Time{}
	}
	now := c.e.opts.Now().UTC()
	reg.PullTimeExclusions[in.PrincipalArn] = now
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"principalArn": in.PrincipalArn, "createdAt": epoch(now)}, nil
}

func opDeregisterPullTimeUpdateExclusion(c *call) (any, error) {
	var in pullTimeExclusionIn
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := validateExclusionARN(in.PrincipalArn); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	if _, ok := reg.PullTimeExclusions[in.PrincipalArn]; !ok {
		return nil, &awsError{http.StatusBadRequest, "ExclusionNotFoundException", fmt.Sprintf(
			"The principal '%s' is not excluded from pull time updates in the registry with id '%s'", in.PrincipalArn, reg.Account)}
	}
	delete(reg.PullTimeExclusions, in.PrincipalArn)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"principalArn": in.PrincipalArn}, nil
}

func opListPullTimeUpdateExclusions(c *call) (any, error) {
	var in struct {
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkMaxResults(in.MaxResults, 1000); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	reg, err := c.registryFor("")
	var arns []string
	if err == nil {
		for a := range reg.PullTimeExclusions {
			arns = append(arns, a)
		}
	}
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sort.Strings(arns)
	page, next, err := paginate(arns, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"pullTimeUpdateExclusions": append([]string{}, page...)}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

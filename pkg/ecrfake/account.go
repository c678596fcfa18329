package ecrfake

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Account settings (GetAccountSetting, PutAccountSetting) and the registry
// permissions policy (Get/Put/DeleteRegistryPolicy). Both belong to one
// registry: an account in a region.

const (
	settingBasicScanTypeVersion = "BASIC_SCAN_TYPE_VERSION"
	settingRegistryPolicyScope  = "REGISTRY_POLICY_SCOPE"
	settingBlobMounting         = "BLOB_MOUNTING"
)

// accountSettings are the settings ECR knows, with their values; the first
// value is the default of a new registry (ECR: "V2 is the default registry
// policy scope"; blob mounting is off until enabled; Clair is deprecated,
// new registries scan with AWS_NATIVE).
var accountSettings = map[string][]string{
	settingBasicScanTypeVersion: {"AWS_NATIVE", "CLAIR"},
	settingRegistryPolicyScope:  {"V2", "V1"},
	settingBlobMounting:         {"DISABLED", "ENABLED"},
}

// setting returns the value of an account setting, or its default. The
// caller holds st.mu.
func (s *registryState) setting(name string) string {
	if v, ok := s.AccountSettings[name]; ok {
		return v
	}
	if vs := accountSettings[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// setSetting stores a checked value. The caller holds st.mu.
func (s *registryState) setSetting(name, value string) {
	if s.AccountSettings == nil {
		s.AccountSettings = map[string]string{}
	}
	s.AccountSettings[name] = value
}

func errValidation(format string, args ...any) *awsError {
	return &awsError{http.StatusBadRequest, "ValidationException", fmt.Sprintf(format, args...)}
}

// checkSettingName applies the model's constraints (required, 1–64
// characters) and then ECR's list of names.
func checkSettingName(name *string) error {
	switch {
	case name == nil:
		return errValidation("1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	case len(*name) < 1:
		return errValidation("1 validation error detected: Value '' at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(*name) > 64:
		return errValidation("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must have length less than or equal to 64", *name)
	}
	if _, ok := accountSettings[*name]; !ok {
		names := make([]string, 0, len(accountSettings))
		for n := range accountSettings {
			names = append(names, n)
		}
		sort.Strings(names)
		return errInvalidParam("Invalid parameter at 'name' failed to satisfy constraint: 'Member must satisfy enum value set: [%s]'", strings.Join(names, ", "))
	}
	return nil
}

type accountSettingIO struct {
	Name  *string `json:"name"`
	Value *string `json:"value"`
}

func opGetAccountSetting(c *call) (any, error) {
	var in accountSettingIO
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkSettingName(in.Name); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	v := reg.setting(*in.Name)
	return accountSettingIO{Name: in.Name, Value: &v}, nil
}

func opPutAccountSetting(c *call) (any, error) {
	var in accountSettingIO
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkSettingName(in.Name); err != nil {
		return nil, err
	}
	if in.Value == nil {
		return nil, errValidation("1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
	}
	values := accountSettings[*in.Name]
	if !contains(values, *in.Value) {
		return nil, errInvalidParam("Invalid parameter at 'value' failed to satisfy constraint: 'Member must satisfy enum value set: [%s]' for account setting %s",
			strings.Join(values, ", "), *in.Name)
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	reg.setSetting(*in.Name, *in.Value)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return in, nil
}

type registryPolicyOut struct {
	RegistryID string `json:"registryId"`
	PolicyText string `json:"policyText"`
}

// validateRegistryPolicy checks a registry policy as SetRepositoryPolicy
// checks a repository policy, and that the emulator can evaluate it.
func validateRegistryPolicy(text string) error {
	if err := validateRepositoryPolicy(text); err != nil {
		return err
	}
	if _, err := parsePolicy(text); err != nil {
		return errInvalidParam("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy provided': %v", err)
	}
	return nil
}

func opPutRegistryPolicy(c *call) (any, error) {
	var in struct {
		PolicyText string `json:"policyText"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := validateRegistryPolicy(in.PolicyText); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	reg.Policy = in.PolicyText
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return registryPolicyOut{RegistryID: reg.Account, PolicyText: reg.Policy}, nil
}

// registryPolicy answers Get (and, with remove, Delete) RegistryPolicy.
func registryPolicy(c *call, remove bool) (any, error) {
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	if reg.Policy == "" {
		return nil, &awsError{http.StatusBadRequest, "RegistryPolicyNotFoundException",
			fmt.Sprintf("Registry policy does not exist in the registry with id '%s'", reg.Account)}
	}
	out := registryPolicyOut{RegistryID: reg.Account, PolicyText: reg.Policy}
	if remove {
		reg.Policy = ""
		if err := c.e.st.save(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func opGetRegistryPolicy(c *call) (any, error) { return registryPolicy(c, false) }

func opDeleteRegistryPolicy(c *call) (any, error) { return registryPolicy(c, true) }

// SetAccountSetting sets an account setting of account's registry in the
// default region ("" = the default account), as PutAccountSetting does: for
// tests that need, say, BLOB_MOUNTING enabled without an API client.
func (e *Emulator) SetAccountSetting(account, name, value string) error {
	if account == "" {
		account = e.Account()
	}
	if !e.knownAccount(account) {
		return fmt.Errorf("account %s is not one the emulator serves", account)
	}
	if err := checkSettingName(&name); err != nil {
		return err
	}
	if !contains(accountSettings[name], value) {
		return fmt.Errorf("account setting %s: value %q is not one of %s", name, value, strings.Join(accountSettings[name], ", "))
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	e.st.registry(account, e.opts.Region).setSetting(name, value)
	return e.st.save()
}

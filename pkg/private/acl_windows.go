//go:build windows

package private

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Restrict gives path a protected access control list (inheritance from
// its parent disabled) that grants full control to the current user and to
// SYSTEM only, as OpenSSH for Windows asks of a private key. A directory's
// entries are inherited by what it later holds, so a file created in it is
// private before anything is written to it. Administrators get no entry:
// they can take any file anyway.
func Restrict(path string) error {
	me, err := currentUser()
	if err != nil {
		return fmt.Errorf("restrict %s to you: %w", path, err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("restrict %s to you: %w", path, err)
	}
	inherit := ""
	if st.IsDir() {
		inherit = "OICI"
	}
	sd, err := windows.SecurityDescriptorFromString(fmt.Sprintf("D:P(A;%[1]s;FA;;;%[2]s)(A;%[1]s;FA;;;SY)", inherit, me))
	if err != nil {
		return fmt.Errorf("restrict %s to you: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("restrict %s to you: %w", path, err)
	}
	err = windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("restrict %s to you: %w", path, err)
	}
	return nil
}

// ACL reads path's owner and access control list and reports OpenACL when
// either lets in anyone but the current user, SYSTEM, Administrators (who
// can take any file anyway) and CREATOR OWNER (the creator of what a
// directory later holds). Entries that deny access are ignored; a missing
// (NULL) list lets everyone in.
func ACL(path string) *Problem {
	st, err := os.Lstat(path)
	if err != nil {
		return nil // the caller's Stat reports it
	}
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return aclProblem(path, st.IsDir(), []string{"(unreadable access control list: " + err.Error() + ")"})
	}
	me, err := currentUser()
	if err != nil {
		return aclProblem(path, st.IsDir(), []string{"(unknown current user: " + err.Error() + ")"})
	}
	trusted := func(sid *windows.SID) bool {
		return sid.Equals(me) ||
			sid.IsWellKnown(windows.WinLocalSystemSid) ||
			sid.IsWellKnown(windows.WinBuiltinAdministratorsSid) ||
			sid.IsWellKnown(windows.WinCreatorOwnerSid)
	}
	var others []string
	if owner, _, err := sd.Owner(); err == nil && owner != nil && !trusted(owner) {
		others = append(others, accountName(owner))
	}
	dacl, _, err := sd.DACL()
	switch {
	case err != nil || dacl == nil:
		// No list, or a NULL one: no restriction at all.
		others = append(others, "Everyone")
	default:
		for i := range uint32(dacl.AceCount) {
			var ace *windows.ACCESS_ALLOWED_ACE
			if err := windows.GetAce(dacl, i, &ace); err != nil {
				others = append(others, fmt.Sprintf("(entry %d unreadable: %v)", i, err))
				continue
			}
			switch ace.Header.AceType {
			case windows.ACCESS_DENIED_ACE_TYPE:
				continue
			case windows.ACCESS_ALLOWED_ACE_TYPE:
			default:
				others = append(others, fmt.Sprintf("(entry %d of type %d)", i, ace.Header.AceType))
				continue
			}
			if ace.Mask == 0 {
				continue
			}
			sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
			if !trusted(sid) {
				others = append(others, accountName(sid))
			}
		}
	}
	if len(others) == 0 {
		return nil
	}
	return aclProblem(path, st.IsDir(), others)
}

// currentUser returns the SID of the user the process runs as.
func currentUser() (*windows.SID, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, err
	}
	return u.User.Sid, nil
}

// accountName names sid as DOMAIN\name, or by its string form when it has
// no name.
func accountName(sid *windows.SID) string {
	account, domain, _, err := sid.LookupAccount("")
	switch {
	case err != nil:
		return sid.String()
	case domain == "":
		return account
	}
	return domain + `\` + account
}

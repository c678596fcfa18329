// Package config reads ecrgate's configuration: one YAML file shared by the
// push proxy (ecrgate) and the credential helper (docker-credential-ecrgate).
//
// # Where the file is
//
// Load reads the file it is given (the --config flag), else the file named by
// ECRGATE_CONFIG, else $XDG_CONFIG_HOME/ecrgate/config.yaml, where
// XDG_CONFIG_HOME defaults to $HOME/.config. A missing file at that default
// path means "all defaults"; a missing file that was named explicitly is an
// error. The environment is passed in ([]string, as from os.Environ), so
// tests never read the process's own.
//
// # Rules
//
// Every key is optional. An empty file, or one holding only comments, is
// valid and gives the defaults below; a key given with no value (or ~ or
// null) counts as not given.
//
// Unknown keys are errors at every level, and so are repeated keys and values
// of the wrong type. The whole file is checked and every problem reported at
// once, each as file:line: key: message, for example
//
//	config.yaml:7: unknown key "tempaltes" (did you mean "templates"?)
//	config.yaml:12: templates[1].image_tag_mutability: "SOMETIMES" is not one of MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION
//
// Values are taken literally: environment variables are not expanded. The one
// exception is a leading "~/" in path values (audit_log and @file
// references), which stands for $HOME/; relative paths in them are relative
// to the directory of the configuration file. Enumerated values are
// case-sensitive and spelled as shown. Strings may be written unquoted even
// when they look like numbers (cost-center: 42); true and false are accepted
// only for yes/no keys. One YAML document per file; anchors and aliases
// work, merge keys (<<) do not.
//
// The file holds no secrets: AWS credentials come from the AWS SDK's usual
// sources, selected per registry by profile or role_arn.
//
// # Who may write it
//
// Whoever can change the file can choose where tokens go (endpoint,
// api_endpoint), so only you and root may: Load refuses a file that belongs
// to another user, or that its group or others can write, or that sits in a
// directory another user owns or others can write (unless it has the sticky
// bit, as /tmp), and says which chmod fixes it (ErrOthersCanWrite). A
// symbolic link is judged by the file it leads to. Others may read the file.
// The credential helper and ecrgate-fetch-token read such a file anyway
// (LoadTolerant), without its endpoint and api_endpoint keys, and warn.
// Windows files are not checked.
//
// # Keys
//
// listen: host:port of the registry-mode proxy, which Docker reaches as
// localhost:5000/<name> over plain HTTP on loopback. Default 127.0.0.1:5000.
// An address off loopback (0.0.0.0:5000, a LAN address, a host name other
// than localhost) needs allow_remote: true and tls; the same holds for
// intercept.listen.
//
// admin_listen: host:port serving /healthz and /metrics. Default
// 127.0.0.1:5002. Off loopback it needs allow_remote: true, and it stays
// plain HTTP (kubelet probes and Prometheus scrape it; it serves no
// tokens and creates nothing).
//
// allow_remote: true makes ecrgate a shared team proxy (several replicas
// behind a Kubernetes Service, say). Default false. Then the listeners may
// listen off loopback (see listen), and every request, from loopback
// clients too, goes upstream with its caller's own Authorization: ecrgate
// never adds its own token, does not answer GET /v2/ itself (a client
// without credentials meets ECR's own 401 Basic challenge), accepts any
// Host header (clients name it by its DNS name; browser requests are still
// refused), and creates a repository only for a caller whose token ECR
// accepts for that repository of that registry. ecrgate's own AWS identity
// is used for CreateRepository and the policies only.
//
// tls: {cert_file, key_file}: PEM files of the certificate (with its
// chain) and private key that the registry listener serves HTTPS with, and
// that wrap the intercept listener's CONNECT front (clients then use an
// https:// proxy URL). Both or neither; paths as audit_log ("~/", relative
// to this file's directory). Read and checked as a pair at start; when
// either file changes (cert-manager renewing a Kubernetes Secret, which
// swaps a symbolic link), new connections get the new pair, and a pair
// that fails to load keeps the old one with a warning. TLS 1.2 or later.
//
// intercept: the CONNECT front that dockerd's HTTPS_PROXY points at.
//
//   - listen: its host:port. Default 127.0.0.1:5001. The three listen
//     addresses must differ.
//   - hosts: which CONNECT targets ecrgate decrypts and serves. "configured"
//     (default): the ECR hosts this file names (default_registry, routes,
//     registries, local_hosts values); "all-ecr": every ECR registry host.
//   - tunnel_others: true (default) passes CONNECTs to every other host
//     through as an opaque tunnel, never decrypted; false refuses them.
//
// log_level: debug, info (default), warn or error.
//
// log_format: text (default) or json.
//
// audit_log: the audit log file (JSON lines). Default $XDG_STATE_HOME/ecrgate/audit.jsonl, where
// XDG_STATE_HOME defaults to $HOME/.local/state; no audit log when neither
// is set.
//
// default_registry: the ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com
// and the other forms of package ecrhost, without scheme, port or path)
// that registry-mode names go to when no route matches. Not ECR Public.
// No default: registry mode then needs routes.
//
// routes: a list of {prefix, registry}. A registry-mode name that starts with
// prefix goes to registry instead of default_registry, with the prefix
// removed: with prefix "prod/", localhost:5000/prod/team/app is team/app in
// that registry. The longest matching prefix wins. prefix must end with '/'
// and be a valid repository namespace; prefixes must be unique; registry
// is an ECR registry host, not ECR Public.
//
// registries: a list of per-registry settings, each for one host (unique,
// compared without regard to case; ECR Public allowed):
//
//   - host: the ECR registry host. Required.
//   - profile: the AWS shared-config profile whose credentials reach this
//     registry. Default: the SDK's default chain (AWS_PROFILE and so on).
//   - role_arn: an IAM role to assume for this registry,
//     arn:aws:iam::<12-digit account>:role/<name> (or another partition).
//   - endpoint: an absolute http:// or https:// URL that replaces the
//     registry's data-plane endpoint (an emulator, a VPC endpoint).
//   - api_endpoint: the same for the ECR control-plane API.
//
// allow: repository names ecrgate may create, as globs; empty (the default)
// allows every name. deny: names it must not create; deny wins over allow.
// A glob matches the whole name: '*' matches any run of characters within
// one path component (never '/'), '**' any run including '/', and '**/' at
// the start or after '/' zero or more whole components; every other
// character stands for itself. So "team/*" matches team/app but not
// team/app/api, "team/**" matches both, "*/tmp*" matches team/tmp-1 but
// not tmp-1, and "**/tmp*" matches tmp-1, team/tmp-1 and a/b/tmp-1.
// Patterns use the characters of repository names (lower case) plus '*'.
//
// dry_run: true makes ecrgate decide and log as usual but create no
// repositories. Default false.
//
// local_hosts: a mapping from a local proxy host, as it appears in image
// names (localhost:5000), to the ECR registry host whose token the
// credential helper returns for it. Default, when default_registry is set:
// the host:port of listen and localhost:<port> both map to
// default_registry (127.0.0.1:<port> when listen has no host or an
// unspecified one). An empty mapping ({}) maps nothing.
//
// shared_proxies: the client side of a shared team proxy: a mapping from
// its host, as it appears in image names (ecrgate.example.internal:5000),
// to the ECR registry host it serves. The credential helper hands that
// registry's token (the caller's own) to that host, and ecrgate setup
// docker names the helper for it in Docker's credHelpers. A loopback or
// localhost name, an ECR host or a local_hosts key is refused: a shared
// proxy is another machine's ecrgate, reached over TLS, and local_hosts
// names local proxies, which get no token.
//
// templates: what a repository ecrgate creates gets, like ECR's repository
// creation templates. A name takes the template with the longest prefix it
// lies under, with an implied trailing '/' ("team" covers team/app and
// team/a/b, not teamx/app and not team itself); then the ROOT template;
// then the built-in default (MUTABLE, AES256, nothing else). Each entry:
//
//   - prefix: ROOT or a repository namespace such as team or team/app (a
//     trailing '/' is allowed and dropped). Required and unique.
//   - image_tag_mutability: MUTABLE (default), IMMUTABLE,
//     IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.
//   - image_tag_mutability_exclusion_filters: tags exempt from the
//     mutability setting, a list of {filter_type: WILDCARD, filter: "latest"}
//     (filter_type defaults to WILDCARD; filter is 1 to 128 characters of
//     0-9 a-z A-Z . _ - and the wildcard *). Allowed with the
//     *_WITH_EXCLUSION settings only, which need 1 to 5 of them. As a
//     convenience, IMMUTABLE or MUTABLE together with filters is read as
//     IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.
//   - scan_on_push: true asks ECR to scan each image when it is pushed.
//     Default false.
//   - encryption: {type, kms_key}. type is AES256 (default), KMS or KMS_DSSE;
//     kms_key (KMS types only; default the AWS-managed key) is a key id, a
//     key ARN, alias/<name> or an alias ARN.
//   - lifecycle_policy: an ECR lifecycle policy, inline JSON or "@file" (a
//     file read when the configuration is loaded). A JSON object with a
//     non-empty "rules" list, 100 to 30,720 characters.
//   - repository_policy: a repository policy, inline JSON or "@file". A
//     JSON object with a "Statement", at most 10,240 characters.
//   - tags: resource tags, a mapping of at most 50. Keys are 1 to 128
//     characters and do not start with "aws:"; values are at most 256
//     characters; both use letters, digits, spaces and _ . : / = + - @.
//   - mount_from: repositories of the same registry where shared layers
//     (base images) may already live, a list of repository names. When a
//     pusher asks whether a layer exists and ecrgate's own index of blobs
//     knows no repository holding it, ecrgate asks these.
//   - pull_accounts: AWS account ids (12 digits) whose principals may pull
//     from the repositories the template creates, such as a data plane's
//     account. The repository policy gets one statement, Sid
//     "ecrgate-pull-accounts", that allows arn:aws:iam::<id>:root (in the
//     registry's partition) ecr:BatchGetImage, ecr:GetDownloadUrlForLayer
//     and ecr:BatchCheckLayerAvailability; with repository_policy set too,
//     the statement is added to that policy's statements, whose Sid must
//     then differ. The merged policy is the one ecrgate sets, explain shows
//     and templates export exports; it must stay within 10,240 characters.
//   - pull_principals: IAM role or user ARNs
//     (arn:aws:iam::<account>:role/<name>) added to the same statement.
//   - custom_role_arn: the IAM role (arn:aws:iam::<account>:role/<name>)
//     that ECR assumes to create repositories from this template's ECR
//     creation template (ecrgate templates export), which ECR requires
//     when the template sets KMS encryption or tags. ecrgate's own
//     creations do not use it.
//
// mount_shared_layers: true (default) lets ecrgate answer a pusher's
// HEAD of a blob that is missing in the target repository by mounting it
// from another repository of the same registry that holds it (one
// ecrgate saw it pushed to or pulled from, or a template's mount_from),
// when the registry's BLOB_MOUNTING account setting is ENABLED and both
// repositories have the same encryption; the pusher then skips the
// upload. false turns this off.
//
// # Example
//
//	listen: 127.0.0.1:5000
//	admin_listen: 127.0.0.1:5002
//	intercept:
//	  listen: 127.0.0.1:5001
//	log_level: info
//	log_format: text
//	audit_log: ~/.local/state/ecrgate/audit.jsonl
//	default_registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com
//	routes:
//	  - prefix: prod/
//	    registry: 222222222222.dkr.ecr.eu-west-1.amazonaws.com
//	registries:
//	  - host: 123456789012.dkr.ecr.us-east-1.amazonaws.com
//	    profile: dev
//	allow: ["team/*", "tools/*"]
//	deny: ["*/tmp*"]
//	templates:
//	  - prefix: ROOT
//	    image_tag_mutability: MUTABLE
//	  - prefix: team
//	    image_tag_mutability: IMMUTABLE
//	    image_tag_mutability_exclusion_filters: [{filter_type: WILDCARD, filter: "latest"}]
//	    scan_on_push: true
//	    encryption: {type: KMS, kms_key: alias/ecr}
//	    lifecycle_policy: "@lifecycle.json"
//	    repository_policy: "@pull-from-prod.json"
//	    tags: {team: platform, cost-center: "42"}
//	    mount_from: [team/base]
//	    pull_accounts: ["111122223333"]
//
// A shared team proxy's own file (several replicas, each with it):
//
//	listen: 0.0.0.0:5000
//	admin_listen: 0.0.0.0:5002
//	allow_remote: true
//	tls: {cert_file: /etc/ecrgate/tls/tls.crt, key_file: /etc/ecrgate/tls/tls.key}
//	default_registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com
//
// and its clients' files:
//
//	shared_proxies:
//	  ecrgate.example.internal:5000: 123456789012.dkr.ecr.us-east-1.amazonaws.com
package config
